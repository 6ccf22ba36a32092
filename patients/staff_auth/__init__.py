"""Staff sign-in: the admin's login with its limits (`limits`), password reset by the task queue
(`reset`), two-factor sign-in (`two_factor`) and idle timeouts (`sessions`). README: "Security notes"."""
