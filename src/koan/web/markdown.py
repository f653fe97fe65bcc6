"""Exercise statements and tutor replies: Markdown rendered safely (raw HTML is escaped)."""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt
from markupsafe import Markup

_LANG_ALIASES = {"py": "python", "python3": "python", "js": "javascript", "node": "javascript"}


@lru_cache(maxsize=2)
def _parser(links: bool) -> MarkdownIt:
    # CommonMark with tables and strikethrough; html=False escapes any raw HTML in the source,
    # and markdown-it's link validator refuses javascript:, vbscript: and data: URLs.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    if not links:
        # Text a model wrote: a link in it could send learners anywhere, so it stays text.
        md.disable(["link", "image", "autolink"])
    return md


def render_markdown(source: str | None, links: bool = True) -> Markup:
    """HTML for trusted-structure, untrusted-content Markdown; code blocks get language-* classes
    that the vendored Prism highlights. With `links` off, links and images show as text."""
    md = _parser(links)
    env: dict[str, object] = {}
    tokens = md.parse(source or "", env)
    for token in tokens:
        if token.type == "fence" and token.info:
            lang = token.info.strip().split(" ")[0].lower()
            token.info = _LANG_ALIASES.get(lang, lang)
    return Markup(md.renderer.render(tokens, md.options, env))
