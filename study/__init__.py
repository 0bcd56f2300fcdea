"""The study behind notebooks 04 and 05: verdicts on the paper's claims from recorded runs."""
