"""How strong a configured secret is: ``BOXOFFICE_JWT_SECRET`` and ``BOXOFFICE_ADMIN_KEY``.

A weak secret is refused at start-up (``boxoffice serve`` exits 2 and says which setting);
secrets the server generates (256 random bits) always pass. The estimate is zxcvbn's
(Dropbox's estimator: dictionaries, keyboard patterns, repeats, sequences, dates), in
guesses an attacker who knows those patterns needs. Each secret has its own bar, set by the
attack it faces:

- the JWT secret can be attacked offline by anyone holding one token (an HMAC-SHA256 per
  guess, about 10^10 guesses a second per GPU): at least 10^30 guesses (about 100 bits),
  3 x 10^12 GPU-years;
- the admin key can only be tried online, one request per guess, compared in constant time:
  at least 10^20 guesses (about 66 bits), 3 x 10^7 years at 10^5 requests a second.

zxcvbn counts about 10 guesses per character of random text (``secrets.token_urlsafe(32)``,
43 characters, is 10^43), so a random secret of 30 (admin key: 20) characters or more
passes; 32 times ``a`` is 10^2.6 and ``test-admin-key-0123456789`` 10^15.4.
"""

from __future__ import annotations

from zxcvbn import zxcvbn

JWT_SECRET_GUESSES_LOG10_MIN = 30.0
ADMIN_KEY_GUESSES_LOG10_MIN = 20.0
# zxcvbn refuses longer input (and its run time grows with the length: ~90 ms for 72
# characters here); guessing a secret or a password means guessing its start too, so the
# estimate of its first characters is a lower bound for the whole. Passwords use it as well.
ZXCVBN_CHARS_MAX = 72


def guesses_log10(secret: str) -> float:
    """zxcvbn's estimate of the guesses needed to find ``secret``, as a base-10 logarithm
    (of its first 72 characters, a lower bound for a longer secret)."""
    return float(zxcvbn(secret[:ZXCVBN_CHARS_MAX])["guesses_log10"])


def check(secret: str, guesses_log10_min: float) -> None:
    """Returns when ``secret`` needs at least ``10 ** guesses_log10_min`` guesses.

    Raises:
        ValueError: too weak; the message gives the estimate and the bar, never the secret.
    """
    estimate = guesses_log10(secret)
    if estimate < guesses_log10_min:
        raise ValueError(
            f"too weak: about 10^{estimate:.1f} guesses would find it, at least "
            f"10^{guesses_log10_min:g} are needed; use a random value (e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`) or leave it "
            "unset to have one generated and kept in the store"
        )
