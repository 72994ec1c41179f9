"""Display sanitiser for incoming HTML mail: hostile by default, made safe to render.

Buyer mail is written by strangers and relayed unchanged, so its HTML is treated
as an attack on the agent reading it. nh3 (Rust's ammonia, an html5ever parser)
parses it the way a browser would and rebuilds it from an allowlist; nothing is
matched with regular expressions. The rules below only ever narrow what nh3
already allows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import nh3

__all__ = ["SanitizedHtml", "sanitize_email_html"]

#: Ordinary formatting mail uses. No form controls, frames, media, SVG/MathML
#: (their own parsing rules are where mutation-XSS lives) and nothing from <head>.
ALLOWED_TAGS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "caption",
        "center",
        "code",
        "col",
        "colgroup",
        "dd",
        "del",
        "div",
        "dl",
        "dt",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "ins",
        "li",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "u",
        "ul",
    }
)

#: Dropped together with everything inside them: their content is code, styling,
#: a nested document or hidden text, never something the agent should read.
#: (<form> is not here: its text stays, its controls and action go.)
DROPPED_WITH_CONTENT = frozenset(
    {
        "script",
        "style",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "noscript",
        "noembed",
        "noframes",
        "template",
        "svg",
        "math",
        "title",
        "textarea",
        "select",
        "xmp",
    }
)

#: Presentation only. No `on*` (script), no `style` (CSS expression(), url() beacons,
#: overlays that fake our own UI), no `class`/`id` (they would pick up the portal's
#: CSS or clobber DOM names its scripts use), no `background`/`srcset` (unfiltered
#: remote loads).
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"title", "dir", "lang"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "ol": {"start"},
    "table": {"border", "cellpadding", "cellspacing", "width", "align", "summary"},
    "col": {"span", "width", "align"},
    "colgroup": {"span", "width", "align"},
    "td": {"colspan", "rowspan", "width", "align", "valign"},
    "th": {"colspan", "rowspan", "width", "align", "valign", "scope"},
    "tr": {"align", "valign"},
}

#: Schemes nh3 lets through to our own filter. Everything else, javascript:,
#: vbscript: and data: included, is removed by nh3 after it has decoded entities and
#: stripped the tab/newline tricks the way a browser's URL parser does. `cid:` only
#: gets here so that `_UrlFilter` can resolve it; it never reaches the output.
PASSED_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid"})
LINK_SCHEMES = frozenset({"http", "https", "mailto", "tel"})

#: Inline images the caller may hand us as data: URLs. No SVG: it is a document
#: that can carry script, even if <img> never runs it.
_DATA_IMAGE_RE = re.compile(
    r"^data:image/(?:png|gif|jpeg|jpg|webp|bmp|avif);base64,[A-Za-z0-9+/=\s]*$", re.IGNORECASE
)
# What a browser ignores in a URL before and inside the scheme.
_URL_NOISE_RE = re.compile(r"[\x00-\x20\x7f]+")


@dataclass(frozen=True)
class SanitizedHtml:
    """Safe HTML plus what was held back, so the page can offer to show remote images."""

    html: str
    blocked_remote_images: int = 0

    def __html__(self) -> str:
        # Jinja renders objects with __html__ unescaped: `{{ body }}` just works.
        return self.html

    def __str__(self) -> str:
        return self.html


def _scheme(url: str) -> str | None:
    """The lower-case scheme a browser would see, or None for a relative URL."""
    compact = _URL_NOISE_RE.sub("", url)
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*):", compact)
    return match.group(1).lower() if match else None


def _caller_url_is_safe(url: str) -> bool:
    """A URL from `inline_images`: our own path, an http(s) URL or a raster data: image."""
    if _DATA_IMAGE_RE.match(url):
        return True
    scheme = _scheme(url)
    if scheme is None:
        # A path on the portal itself, like an attachment download; not `//host`.
        return url.startswith("/") and not url.startswith("//") and "\\" not in url
    return scheme in ("http", "https")


def _content_id(url: str) -> str:
    # RFC 2392: cid:<url-encoded Content-ID>, without the angle brackets.
    return unquote(url.split(":", 1)[1]).strip().strip("<>")


def sanitize_email_html(
    html: str,
    *,
    inline_images: Mapping[str, str] | None = None,
    allow_remote_images: bool = False,
) -> SanitizedHtml:
    """Make an incoming HTML body safe to render inside the portal.

    `inline_images` maps Content-IDs (without <>) to the URL the page should load
    for them, e.g. an attachment download URL. Remote (http/https) images are
    removed and counted unless `allow_remote_images`: loading them tells the
    sender that, when and from where the mail was read.
    """
    urls = _UrlFilter(inline_images or {}, allow_remote_images=allow_remote_images)
    return SanitizedHtml(html=_clean(html, urls), blocked_remote_images=urls.blocked)


class _UrlFilter:
    """nh3's attribute filter: decides every href and src, counting the remote images
    it holds back."""

    def __init__(self, inline_images: Mapping[str, str], *, allow_remote_images: bool) -> None:
        self.inline = {key.strip().strip("<>"): value for key, value in inline_images.items()}
        self.inline_folded = {key.lower(): value for key, value in self.inline.items()}
        self.allow_remote_images = allow_remote_images
        self.blocked = 0

    def __call__(self, tag: str, attribute: str, value: str) -> str | None:
        if attribute not in ("href", "src"):
            return value
        # nh3 has already dropped disallowed schemes; relative URLs reach us raw.
        scheme = _scheme(value)
        if scheme is None and value.strip().startswith("//"):
            # Protocol-relative: as remote as https://, so treat it that way.
            value, scheme = "https:" + value.strip(), "https"
        if tag == "img" and attribute == "src":
            return self._image_source(value, scheme)
        if tag == "a" and attribute == "href":
            # Relative links would point into the portal itself (GET requests as the
            # agent); cid: links have nothing to open.
            return value if scheme in LINK_SCHEMES else None
        return None

    def _image_source(self, value: str, scheme: str | None) -> str | None:
        if scheme == "cid":
            return self._resolve_cid(value)
        if scheme in ("http", "https"):
            if self.allow_remote_images:
                return value
            self.blocked += 1
        return None

    def _resolve_cid(self, url: str) -> str | None:
        cid = _content_id(url)
        # Content-IDs are case-sensitive, but mailers are not always consistent.
        target = self.inline.get(cid) or self.inline_folded.get(cid.lower())
        return target if target is not None and _caller_url_is_safe(target) else None


def _clean(html: str, urls: _UrlFilter) -> str:
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=urls,
        # Conditional comments (<!--[if IE]>) are markup in disguise.
        strip_comments=True,
        # noopener: the opened page gets no handle on ours; noreferrer: it does not
        # learn the thread URL; nofollow: we vouch for nothing in buyer mail.
        link_rel="noopener noreferrer nofollow",
        url_schemes=set(PASSED_SCHEMES),
        # Every link opens outside the portal; the sender's own target= is dropped.
        # Images the agent chooses to load do not send the thread URL as Referer.
        set_tag_attribute_values={
            "a": {"target": "_blank"},
            "img": {"referrerpolicy": "no-referrer"},
        },
        # Relative URLs go to the filter (which drops them or, for the caller's
        # own paths, has already checked them); keep what it returned.
        url_relative=lambda url: url,
    )
