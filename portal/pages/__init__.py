"""The patient's pages, one module per family: `registration` (the link from an invitation: the link
pages and setting up an account), `account` (sign-in, sign-out, password reset), `home` (the portal
home and email preferences), `access_requests` ("Request portal access") and `family` (a
representative's registration, an adult's caregivers). What every page wraps itself in is
`portal.guards`; whose record a page opens is `portal.records`."""
