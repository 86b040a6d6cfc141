"""Authentication: admin API tokens (users and sessions come with the auth issue)."""

from fazt.auth._tokens import TOKEN_PREFIX as TOKEN_PREFIX
from fazt.auth._tokens import TokenInfo as TokenInfo
from fazt.auth._tokens import TokenStore as TokenStore

__all__ = ["TOKEN_PREFIX", "TokenInfo", "TokenStore"]
