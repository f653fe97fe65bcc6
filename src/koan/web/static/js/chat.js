/* The tutor chat: sends a question to /api/v1/conversations and shows the reply as it streams
   (Server-Sent Events read from a fetch body, so the POST can carry the CSRF header). */
(function () {
  "use strict";
  var API = "/api/v1/conversations";

  function csrf() { return window.Koan && window.Koan.csrfToken ? window.Koan.csrfToken() : ""; }

  function headers(extra) {
    var h = { "Content-Type": "application/json", "X-CSRF-Token": csrf() };
    for (var k in extra || {}) h[k] = extra[k];
    return h;
  }

  function errorText(body, status) {
    if (status === 401) return "Your session has ended: log in again to send your question (it is kept).";
    if (body && body.detail) return body.detail;
    if (status === 429) return "The tutor needs a short break; try again in a moment.";
    return "The tutor could not answer just now. Please try again.";
  }

  // Tutor replies are Markdown: fenced blocks and inline code become <pre>/<code>; everything
  // else stays text. Built from DOM nodes and text nodes only (never innerHTML), so nothing in
  // a reply can become markup.
  function renderInline(parent, text) {
    var parts = text.split(/(`[^`\n]+`)/);
    for (var i = 0; i < parts.length; i++) {
      var part = parts[i];
      if (!part) continue;
      if (part.length > 2 && part.charAt(0) === "`" && part.charAt(part.length - 1) === "`") {
        var code = document.createElement("code");
        code.textContent = part.slice(1, -1);
        parent.appendChild(code);
      } else {
        parent.appendChild(document.createTextNode(part));
      }
    }
  }

  function renderMarkdown(el, text) {
    el.textContent = "";
    el.setAttribute("data-markdown", text);
    var fence = /^[ \t]*(`{3,}|~{3,})[^\n]*\n([\s\S]*?)(?:^[ \t]*\1[ \t]*$|(?![\s\S]))/gm;
    var last = 0;
    var match;
    while ((match = fence.exec(text)) !== null) {
      renderInline(el, text.slice(last, match.index));
      var pre = document.createElement("pre");
      var code = document.createElement("code");
      code.textContent = match[2].replace(/\n$/, "");
      pre.appendChild(code);
      el.appendChild(pre);
      last = fence.lastIndex;
      if (match[0].length === 0) fence.lastIndex++;
    }
    renderInline(el, text.slice(last));
  }

  function bubble(log, who, text) {
    var div = document.createElement("div");
    div.className = "msg msg-" + who;
    var label = document.createElement("span");
    label.className = "msg-who";
    label.textContent = who === "user" ? "You" : who === "assistant" ? "Tutor" : "Problem";
    var body = document.createElement("div");
    body.className = "msg-body";
    if (who === "assistant") renderMarkdown(body, text || "");
    else body.textContent = text || "";
    div.appendChild(label);
    div.appendChild(body);
    log.appendChild(div);
    log.scrollTop = log.scrollHeight;
    return body;
  }

  function readJSON(response) {
    return response.text().then(function (t) { try { return JSON.parse(t); } catch (e) { return null; } });
  }

  // Parse an SSE stream; call onEvent(name, data) for each event.
  function readEvents(response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    function flush(block) {
      var name = "message", data = [];
      block.split("\n").forEach(function (line) {
        if (line.indexOf("event:") === 0) name = line.slice(6).trim();
        else if (line.indexOf("data:") === 0) data.push(line.slice(5).replace(/^ /, ""));
      });
      if (data.length) onEvent(name, data.join("\n"));
    }
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) { if (buffer.trim()) flush(buffer); return; }
        buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n/g, "\n");
        var at;
        while ((at = buffer.indexOf("\n\n")) >= 0) {
          flush(buffer.slice(0, at));
          buffer = buffer.slice(at + 2);
        }
        return pump();
      });
    }
    return pump();
  }

  function deltaOf(name, raw) {
    var data;
    try { data = JSON.parse(raw); } catch (e) { return { text: raw }; }
    if (typeof data === "string") return { text: data };
    if (name === "error" || (data && data.error)) return { error: data.detail || data.error || "The tutor stopped." };
    if (name === "done" || name === "end" || name === "message_end") return { done: true, data: data };
    // The tutor withheld what it had started to say (it gave a fix away): this text replaces it.
    if (name === "replace") return { replace: data && typeof data.text === "string" ? data.text : "" };
    var text = data.delta !== undefined ? data.delta : data.text !== undefined ? data.text : data.token !== undefined ? data.token : data.content;
    return { text: typeof text === "string" ? text : "" , data: data };
  }

  function Chat(panel) {
    this.panel = panel;
    this.log = panel.querySelector("#chat-log");
    this.form = panel.querySelector("#chat-form");
    this.input = panel.querySelector("#chat-input");
    this.status = panel.querySelector("#chat-status");
    this.send = panel.querySelector("#chat-send");
    this.exerciseId = panel.getAttribute("data-exercise-id") || null;
    this.conversationId = null;
    var self = this;
    this.form.addEventListener("submit", function (event) { event.preventDefault(); self.ask(); });
    // A question being typed survives a reload or a new login on this device, for the learner
    // who typed it (on a shared browser, not for the next one).
    this.key = "koan:question:" + (document.body.getAttribute("data-owner") || "") + ":" + location.pathname;
    var kept = null;
    try { kept = window.localStorage.getItem(this.key); } catch (e) { /* storage refused */ }
    if (kept && !this.input.value) this.input.value = kept;
    this.input.addEventListener("input", function () { self.remember(); });
    this.input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); self.ask(); }
    });
  }

  Chat.prototype.remember = function () {
    try {
      if (this.input.value.trim()) window.localStorage.setItem(this.key, this.input.value);
      else window.localStorage.removeItem(this.key);
    } catch (e) { /* storage refused */ }
  };

  Chat.prototype.forget = function () {
    try { window.localStorage.removeItem(this.key); } catch (e) { /* storage refused */ }
  };

  Chat.prototype.setBusy = function (busy, text) {
    this.send.disabled = busy;
    this.status.textContent = text || "";
  };

  Chat.prototype.ensureConversation = function () {
    var self = this;
    if (this.conversationId) return Promise.resolve(this.conversationId);
    var body = this.exerciseId ? { exercise_id: this.exerciseId } : {};
    return window.Koan.fetch(API, { method: "POST", headers: headers(), body: JSON.stringify(body) })
      .then(function (response) {
        return readJSON(response).then(function (data) {
          if (!response.ok) throw new Error(errorText(data, response.status));
          self.conversationId = data.id;
          document.dispatchEvent(new CustomEvent("koan:conversation", { detail: data }));
          return data.id;
        });
      });
  };

  Chat.prototype.ask = function () {
    var self = this;
    var question = this.input.value.trim();
    if (!question) { this.status.textContent = "Type a question first."; this.input.focus(); return; }
    var asked = bubble(this.log, "user", question);
    this.input.value = "";
    this.setBusy(true, "The tutor is thinking…");
    var answer = null;
    this.ensureConversation().then(function (id) {
      return window.Koan.fetch(API + "/" + encodeURIComponent(id) + "/messages", {
        method: "POST",
        headers: headers({ Accept: "text/event-stream" }),
        body: JSON.stringify({ content: question })
      });
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (!response.ok || type.indexOf("text/event-stream") < 0) {
        return readJSON(response).then(function (data) {
          if (!response.ok) throw new Error(errorText(data, response.status));
          var text = data && (data.content || (data.message && data.message.content) || (data.reply && data.reply.content));
          bubble(self.log, "assistant", text || "");
        });
      }
      self.forget();
      answer = bubble(self.log, "assistant", "");
      answer.parentNode.setAttribute("aria-busy", "true");
      var failed = null;
      var chunks = 0;
      return readEvents(response, function (name, raw) {
        var item = deltaOf(name, raw);
        if (item.error) { failed = item.error; return; }
        if (item.replace !== undefined) {
          renderMarkdown(answer, item.replace);
          answer.parentNode.setAttribute("data-replaced", "true");
          self.log.scrollTop = self.log.scrollHeight;
          return;
        }
        if (item.text) {
          renderMarkdown(answer, (answer.getAttribute("data-markdown") || "") + item.text);
          answer.parentNode.setAttribute("data-chunks", String(++chunks));
          self.log.scrollTop = self.log.scrollHeight;
        }
      }).then(function () {
        answer.parentNode.removeAttribute("aria-busy");
        if (failed) throw new Error(failed);
      });
    }).then(function () {
      self.setBusy(false, "");
      if (answer) answer.parentNode.setAttribute("data-complete", "true");
    }).then(function () {
      self.forget();
    }).catch(function (error) {
      self.setBusy(false, "");
      // The question goes back into the box, to be sent again.
      if (!answer && !self.input.value) {
        self.input.value = question;
        if (asked && asked.parentNode) asked.parentNode.remove();
        self.remember();
      }
      bubble(self.log, "error", error && error.message ? error.message : "The tutor could not answer just now.");
    });
  };

  // A new conversation joins the list and the address, so a reload shows it again.
  function remember(conversation) {
    if (window.history && history.replaceState) history.replaceState(null, "", "/chat?c=" + encodeURIComponent(conversation.id));
    var list = document.getElementById("conversation-list");
    if (!list) return;
    var empty = document.getElementById("no-conversations");
    if (empty) empty.remove();
    var li = document.createElement("li");
    var a = document.createElement("a");
    a.href = "/chat?c=" + encodeURIComponent(conversation.id);
    a.textContent = conversation.title || "Conversation";
    a.setAttribute("aria-current", "page");
    li.appendChild(a);
    list.insertBefore(li, list.firstChild);
  }

  document.addEventListener("DOMContentLoaded", function () {
    // Replies rendered by the server arrive as escaped text: give them the same Markdown.
    var stored = document.querySelectorAll(".msg-assistant .msg-body");
    for (var i = 0; i < stored.length; i++) renderMarkdown(stored[i], stored[i].textContent);
    var panel = document.getElementById("tutor");
    if (!panel || panel.getAttribute("data-chat") !== "on" || !panel.querySelector("#chat-form")) return;
    var chat = new Chat(panel);
    chat.conversationId = panel.getAttribute("data-conversation-id") || null;
    if (document.getElementById("conversation-list")) {
      document.addEventListener("koan:conversation", function (e) { remember(e.detail); });
    }
  });
})();
