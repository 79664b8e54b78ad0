"""Telephony records (Call, Turn, SIP accounts) live here."""
