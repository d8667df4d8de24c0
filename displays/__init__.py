"""Displays: the pages (TV board, phone page, kiosk, counter, admin). Built in a later issue."""
