"""MkDocs hook of the course site (named in the generated mkdocs.yml): every notebook page would inline
mkdocs-jupyter's 575 kB JupyterLab stylesheet; the site links one copy (assets/jupyter/index.css, copied
from the installed mkdocs-jupyter by course_tools.site) instead, so pages load and search-index faster
and the site is megabytes smaller."""
from __future__ import annotations

import re

_LAB_CSS = re.compile(r'<style type="text/css">\s*@charset "UTF-8";\.jupyter-wrapper\{--md-red-50:.*?</style>', re.S)


def on_page_content(html, page, config, files):
    return _LAB_CSS.sub("", html, count=1)
