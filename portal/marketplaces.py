"""The Amazon marketplaces a channel can be connected to."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Marketplace:
    code: str  # our short code, used in URLs, the CLI and helpdesk addresses
    name: str  # "Amazon UK"
    country: str
    marketplace_id: str  # Amazon's marketplace ID
    region: str  # NA, EU or FE: decides which developer account to authorise
    domain: str  # the buyer-facing site
    #: Seller Central's base URL where it is not sellercentral.<domain>: Amazon's
    #: developer guide ("Seller Central URLs") lists the unified European one for
    #: the UK, Germany, France, Italy and Spain.
    seller_central: str = ""

    @property
    def seller_central_url(self) -> str:
        """Where the seller signs in for this marketplace."""
        return self.seller_central or f"https://sellercentral.{self.domain}"

    @property
    def relay_domain(self) -> str:
        """The domain of the buyers' aliases at Amazon's relay, e.g. marketplace.amazon.ie."""
        return f"marketplace.{self.domain}"

    def product_url(self, asin: str) -> str:
        """The product page of `asin` on this marketplace's own site."""
        return f"https://www.{self.domain}/dp/{quote(asin, safe='')}"

    def seller_central_order_url(self, order_id: str) -> str:
        """The order's page in this marketplace's Seller Central."""
        return f"{self.seller_central_url}/orders-v3/order/{quote(order_id, safe='')}"


_EUROPE = "https://sellercentral-europe.amazon.com"


MARKETPLACES: tuple[Marketplace, ...] = (
    Marketplace("US", "Amazon US", "United States", "ATVPDKIKX0DER", "NA", "amazon.com"),
    Marketplace("CA", "Amazon Canada", "Canada", "A2EUQ1WTGCTBG2", "NA", "amazon.ca"),
    Marketplace("MX", "Amazon Mexico", "Mexico", "A1AM78C64UM0Y8", "NA", "amazon.com.mx"),
    Marketplace("BR", "Amazon Brazil", "Brazil", "A2Q3Y263D00KWC", "NA", "amazon.com.br"),
    Marketplace(
        "UK", "Amazon UK", "United Kingdom", "A1F83G8C2ARO7P", "EU", "amazon.co.uk", _EUROPE
    ),
    Marketplace("IE", "Amazon Ireland", "Ireland", "A28R8C7NBKEWEA", "EU", "amazon.ie"),
    Marketplace("DE", "Amazon Germany", "Germany", "A1PA6795UKMFR9", "EU", "amazon.de", _EUROPE),
    Marketplace("FR", "Amazon France", "France", "A13V1IB3VIYZZH", "EU", "amazon.fr", _EUROPE),
    Marketplace("IT", "Amazon Italy", "Italy", "APJ6JRA9NG5V4", "EU", "amazon.it", _EUROPE),
    Marketplace("ES", "Amazon Spain", "Spain", "A1RKKUPIHCS9HS", "EU", "amazon.es", _EUROPE),
    Marketplace("NL", "Amazon Netherlands", "Netherlands", "A1805IZSGTT6HS", "EU", "amazon.nl"),
    Marketplace("BE", "Amazon Belgium", "Belgium", "AMEN7PMS3EDWL", "EU", "amazon.com.be"),
    Marketplace("SE", "Amazon Sweden", "Sweden", "A2NODRKZP88ZB9", "EU", "amazon.se"),
    Marketplace("PL", "Amazon Poland", "Poland", "A1C3SOZRARQ6R3", "EU", "amazon.pl"),
    Marketplace("TR", "Amazon Turkey", "Turkey", "A33AVAJ2PDY3EV", "EU", "amazon.com.tr"),
    Marketplace("EG", "Amazon Egypt", "Egypt", "ARBP9OOSHTCHU", "EU", "amazon.eg"),
    Marketplace("AE", "Amazon UAE", "United Arab Emirates", "A2VIGQ35RCS4UG", "EU", "amazon.ae"),
    Marketplace("IN", "Amazon India", "India", "A21TJRUUN4KGV", "EU", "amazon.in"),
    Marketplace("SA", "Amazon Saudi Arabia", "Saudi Arabia", "A17E79C6D8DWNP", "EU", "amazon.sa"),
    Marketplace("ZA", "Amazon South Africa", "South Africa", "AE08WJ6YKNBMC", "EU", "amazon.co.za"),
    Marketplace("JP", "Amazon Japan", "Japan", "A1VC38T7YXB528", "FE", "amazon.co.jp"),
    Marketplace("AU", "Amazon Australia", "Australia", "A39IBJ37TRP1C6", "FE", "amazon.com.au"),
    Marketplace("SG", "Amazon Singapore", "Singapore", "A19VAU5U5O7RUS", "FE", "amazon.sg"),
)

_BY_CODE = {m.code: m for m in MARKETPLACES}


def get_marketplace(code: str) -> Marketplace | None:
    """The marketplace with this code (case-insensitive; "GB" is accepted for the UK)."""
    code = code.strip().upper()
    return _BY_CODE.get("UK" if code == "GB" else code)


#: The MWS developer sellers authorise, from the seller guide Sellerdesk replaces.
#: Keys are a marketplace code or a region; a marketplace's own entry wins. Amazon
#: registered developers per region, but the guide only gives numbers for these.
DEFAULT_DEVELOPER_NAME = "xSellco"
DEFAULT_DEVELOPER_ACCOUNTS: dict[str, str] = {
    "EU": "0873-6813-5448",
    "US": "5759-5616-2466",
    "CA": "5759-5616-2466",
    "JP": "6795-5391-1761",
}


@dataclass(frozen=True)
class Developer:
    name: str
    #: None when no developer account number is known for this marketplace.
    account_number: str | None


def developer_for(marketplace: Marketplace, *, name: str, accounts: dict[str, str]) -> Developer:
    """Who to authorise in Seller Central for `marketplace`."""
    number = accounts.get(marketplace.code) or accounts.get(marketplace.region)
    return Developer(name=name, account_number=number or None)


def parse_developer_accounts(raw: str) -> dict[str, str]:
    """`EU=0873-6813-5448,US=…` (keys: region or marketplace code) as a dict."""
    accounts: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, number = item.partition("=")
        if not sep or not key.strip() or not number.strip():
            raise ValueError(f"expected KEY=NUMBER, got {item.strip()!r}")
        accounts[key.strip().upper()] = number.strip()
    return accounts
