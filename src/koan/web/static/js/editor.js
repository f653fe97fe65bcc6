/* A small code editor over a plain <textarea>: line numbers, Prism highlighting, Tab handling.
   The textarea stays the real control (labels, forms, screen readers and no-JS all work);
   a highlighted copy sits underneath it. */
(function () {
  "use strict";
  var INDENT = { python: "    ", javascript: "  " };

  function enhance(box) {
    var textarea = box.querySelector("textarea");
    if (!textarea || box.classList.contains("enhanced")) return;
    var language = box.getAttribute("data-language") || "python";
    var unit = INDENT[language] || "    ";
    var gutter = document.createElement("div");
    gutter.className = "gutter";
    gutter.setAttribute("aria-hidden", "true");
    var area = document.createElement("div");
    area.className = "code-area";
    var pre = document.createElement("pre");
    pre.setAttribute("aria-hidden", "true");
    pre.setAttribute("tabindex", "-1");
    var code = document.createElement("code");
    code.className = "language-" + language;
    pre.appendChild(code);
    textarea.parentNode.insertBefore(gutter, textarea);
    textarea.parentNode.insertBefore(area, textarea);
    area.appendChild(pre);
    area.appendChild(textarea);
    box.classList.add("enhanced");
    var escaped = false;
    var lines = -1;
    var errorLine = 0;  // a line the last run's error named, marked in the gutter

    function render() {
      // The trailing newline keeps the copy as tall as the textarea when it ends in one.
      code.textContent = textarea.value + "\n";
      if (window.Prism && window.Prism.languages[language]) window.Prism.highlightElement(code);
      var count = textarea.value.split("\n").length;
      if (count !== lines) {
        lines = count;
        drawGutter();
      }
      sync();
    }
    function drawGutter() {
      gutter.textContent = "";
      for (var i = 1; i <= lines; i++) {
        var n = document.createElement("span");
        n.textContent = String(i);
        if (i === errorLine) { n.className = "error-line"; n.title = "The error is on this line"; }
        gutter.appendChild(n);
        if (i < lines) gutter.appendChild(document.createTextNode("\n"));
      }
    }
    box.markErrorLine = function (line) { errorLine = line || 0; drawGutter(); };
    function sync() {
      pre.scrollTop = textarea.scrollTop;
      pre.scrollLeft = textarea.scrollLeft;
      gutter.scrollTop = textarea.scrollTop;
    }
    function replace(start, end, text, selStart, selEnd) {
      textarea.setSelectionRange(start, end);
      // execCommand keeps the browser's undo history; fall back to setRangeText.
      if (!document.execCommand || !document.execCommand("insertText", false, text)) {
        textarea.setRangeText(text, start, end, "end");
      }
      textarea.setSelectionRange(selStart, selEnd);
      render();
    }
    function lineStart(pos) { return textarea.value.lastIndexOf("\n", pos - 1) + 1; }

    textarea.addEventListener("input", render);
    textarea.addEventListener("scroll", sync);
    textarea.addEventListener("keydown", function (event) {
      var value = textarea.value, start = textarea.selectionStart, end = textarea.selectionEnd;
      if (event.key === "Escape") { escaped = true; return; }
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        // Ctrl+Enter (Cmd+Enter on a Mac) runs the tests.
        event.preventDefault();
        if (textarea.form && textarea.form.requestSubmit) textarea.form.requestSubmit();
        return;
      }
      if (event.key === "Tab" && !escaped && !event.ctrlKey && !event.altKey && !event.metaKey) {
        event.preventDefault();
        var from = lineStart(start);
        if (start === end && !event.shiftKey) {
          replace(start, end, unit, start + unit.length, start + unit.length);
          return;
        }
        var block = value.slice(from, end);
        var rows = block.split("\n");
        var changed = rows.map(function (row) {
          if (!event.shiftKey) return unit + row;
          var cut = 0;
          while (cut < unit.length && row.charAt(cut) === " ") cut++;
          return row.slice(cut);
        }).join("\n");
        var firstDelta = changed.split("\n")[0].length - rows[0].length;
        replace(from, end, changed, Math.max(from, start + firstDelta), from + changed.length);
        return;
      }
      escaped = false;
      if (event.key === "Enter" && !event.shiftKey && !event.ctrlKey && !event.metaKey && !event.altKey) {
        // Keep the indentation of the current line; one more level after a ':' or '{'.
        var from2 = lineStart(start);
        var indent = (value.slice(from2, start).match(/^[ \t]*/) || [""])[0];
        var before = value.slice(from2, start).replace(/\s+$/, "");
        if (/[:{[(]$/.test(before)) indent += unit;
        event.preventDefault();
        var text = "\n" + indent;
        replace(start, end, text, start + text.length, start + text.length);
      }
    });
    textarea.addEventListener("blur", function () { escaped = false; });
    render();
  }

  function enhanceAll(root) { root.querySelectorAll(".editor").forEach(enhance); }
  document.addEventListener("DOMContentLoaded", function () { enhanceAll(document); });
  document.addEventListener("htmx:afterSwap", function (e) { if (e.detail.target) enhanceAll(e.detail.target); });
  // A run whose error names a line of the learner's code marks it (and a clean run clears it).
  document.addEventListener("htmx:afterSettle", function (e) {
    if (!e.detail.target || e.detail.target.id !== "results") return;
    var result = e.detail.target.querySelector("[data-error-line]");
    var box = document.querySelector(".editor.enhanced");
    if (box && box.markErrorLine) box.markErrorLine(result ? Number(result.getAttribute("data-error-line")) : 0);
  });
  document.addEventListener("DOMContentLoaded", function () {
    var result = document.querySelector("#results [data-error-line]");
    var box = document.querySelector(".editor.enhanced");
    if (result && box && box.markErrorLine) box.markErrorLine(Number(result.getAttribute("data-error-line")));
  });
})();
