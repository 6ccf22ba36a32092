"""The one way staff pages write dates and times (FORMAT_MODULE_PATH): "Dec. 7, 2026, 8:11 AM".

Django's English formats would write "8:11 a.m." in lists and forms while the apps' own sentences
said "8:11 AM"; every page now uses these, and `patients.timezones.local_time` names the zone.
"""

DATE_FORMAT = "N j, Y"
TIME_FORMAT = "g:i A"
DATETIME_FORMAT = "N j, Y, g:i A"
SHORT_DATETIME_FORMAT = "m/d/Y g:i A"
