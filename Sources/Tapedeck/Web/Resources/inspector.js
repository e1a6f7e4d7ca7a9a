// Tapedeck's web inspector: one page for every URL, routed here by location.pathname.
// Tape bytes are hostile input: they only ever reach the page as textContent, never as markup.
"use strict";

(() => {
  const SESSIONS_PER_PAGE = 100;
  const EVENTS_PER_PAGE = 1000;
  const JUMP_PAGE = 5000;
  // The ladder folds payloads to FOLD_BYTES anyway, so a preview a little larger keeps the first page small
  // and still lets most "show all" clicks expand without another request.
  const EVENT_PREVIEW = 1024;
  const FOLD_BYTES = 512;
  const FOLD_LINES = 20;
  const STREAM_FOLD_BYTES = 64 * 1024;
  const DIFF_CONTEXT = 1024;
  const POLL_MS = 1000;

  const state = {
    info: null,
    infoPromise: null,
    page: null,
    navToken: 0,
    key: "",
    marked: new Set(),
    pollTimer: null,
    polling: false,
  };

  // ------------------------------------------------------------------ DOM and formatting helpers

  /** Builds an element: h("a", {href: "/", class: "x"}, "text", child). Strings become text nodes. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [key, value] of Object.entries(attrs)) {
        if (value === null || value === undefined || value === false) continue;
        if (key === "class") el.className = value;
        else if (key === "text") el.textContent = value;
        else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
        else el.setAttribute(key, value === true ? "" : String(value));
      }
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function fmtInt(n) {
    return n === null || n === undefined ? "" : Number(n).toLocaleString("en-US");
  }

  /** Nanoseconds as "12.345 ms" under a second, else "1.234 s". */
  function fmtNs(ns) {
    if (ns === null || ns === undefined) return "";
    return ns < 1e9 ? `${(ns / 1e6).toFixed(3)} ms` : `${(ns / 1e9).toFixed(3)} s`;
  }

  function plural(n, word) {
    return `${fmtInt(n)} ${word}${n === 1 ? "" : "s"}`;
  }

  function fmtBytes(n) {
    return n === 1 ? "1 byte" : `${fmtInt(n)} bytes`;
  }

  function tlsSummary(tls) {
    if (!tls) return "";
    return [tls.version, tls.mode, tls.alpn].filter(Boolean).join(" ");
  }

  function tlsTitle(tls) {
    if (!tls) return null;
    return Object.entries(tls)
      .filter(([, v]) => v !== null && v !== undefined && v !== "")
      .map(([k, v]) => `${k}: ${v}`)
      .join("\n");
  }

  function decodeBase64(text) {
    if (!text) return new Uint8Array(0);
    if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
    const binary = atob(text);
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  }

  // ------------------------------------------------------------------ the API

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  /** GETs a JSON answer; a non-2xx answer throws with the server's own error text. */
  async function api(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const text = body && body.error ? body.error : `${response.status} ${response.statusText}`;
      throw new ApiError(text, response.status);
    }
    return body;
  }

  async function apiBytes(path) {
    const response = await fetch(path);
    if (!response.ok) {
      let text = `${response.status} ${response.statusText}`;
      try {
        const body = await response.json();
        if (body && body.error) text = body.error;
      } catch (_) {
        /* not JSON: keep the status line */
      }
      throw new ApiError(text, response.status);
    }
    return new Uint8Array(await response.arrayBuffer());
  }

  function query(params) {
    const p = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== null && value !== undefined && value !== "") p.set(key, String(value));
    }
    const text = p.toString();
    return text ? `?${text}` : "";
  }

  function errorBox(message) {
    return h("p", { class: "error", role: "alert" }, message);
  }

  // ------------------------------------------------------------------ bytes as text or hex

  const PRINTABLE = new Uint8Array(256);
  for (let b = 0x20; b < 0x7f; b++) PRINTABLE[b] = 1;
  PRINTABLE[0x5c] = 0; // a backslash is escaped so escapes stay unambiguous

  const ESCAPES = Array.from({ length: 256 }, (_, b) => {
    if (b === 0x0a) return "\\n\n"; // a real newline after \n, so HTTP reads line by line
    if (b === 0x0d) return "\\r";
    if (b === 0x09) return "\\t";
    if (b === 0x5c) return "\\\\";
    return `\\x${b.toString(16).padStart(2, "0")}`;
  });
  const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));
  const GUTTER = Array.from({ length: 256 }, (_, b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "."));

  /** Text for most payloads, hex when fewer than 90% of the first bytes are printable or whitespace. */
  function defaultView(bytes) {
    const n = Math.min(bytes.length, FOLD_BYTES);
    if (n === 0) return "text";
    let printable = 0;
    for (let i = 0; i < n; i++) {
      const b = bytes[i];
      if ((b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x0d || b === 0x09) printable++;
    }
    return printable >= n * 0.9 ? "text" : "hex";
  }

  /** Where a folded payload ends: FOLD_BYTES, or just after its FOLD_LINES-th newline if sooner. */
  function foldEnd(bytes) {
    const end = Math.min(bytes.length, FOLD_BYTES);
    let lines = 0;
    for (let i = 0; i < end; i++) {
      if (bytes[i] === 0x0a && ++lines === FOLD_LINES) return i + 1;
    }
    return end;
  }

  /** Appends bytes [a, b) as text: printable ASCII as is, the rest as dimmed escapes. */
  function appendText(parent, bytes, a, b) {
    let i = a;
    while (i < b) {
      let plain = "";
      while (i < b && PRINTABLE[bytes[i]]) plain += String.fromCharCode(bytes[i++]);
      if (plain) parent.append(plain);
      let escaped = "";
      while (i < b && !PRINTABLE[bytes[i]]) escaped += ESCAPES[bytes[i++]];
      if (escaped) {
        const span = document.createElement("span");
        span.className = "esc";
        span.textContent = escaped;
        parent.append(span);
      }
    }
  }

  function hexText(bytes, a, b, rowStart) {
    let out = "";
    for (let i = a; i < b; i++) {
      if (i > a) out += (i - rowStart) % 16 === 8 ? "  " : " ";
      out += HEX[bytes[i]];
    }
    return out;
  }

  function gutterText(bytes, a, b) {
    let out = "";
    for (let i = a; i < b; i++) out += GUTTER[bytes[i]];
    return out;
  }

  /**
   * Byte ranges ({start, end, cls, title, attrs}) and points ({at, cls, title, text}) laid over a payload.
   * Rendering walks the bytes forward once, so active ranges and points are tracked with cursors rather than
   * searched per segment (a stream can have thousands of boundaries).
   */
  class Decorations {
    constructor(ranges = [], points = []) {
      this.ranges = ranges.filter((r) => r.end > r.start).sort((x, y) => x.start - y.start);
      this.points = points.slice().sort((x, y) => x.at - y.at);
      const cuts = new Set();
      for (const r of this.ranges) {
        cuts.add(r.start);
        cuts.add(r.end);
      }
      for (const p of this.points) cuts.add(p.at);
      this.cuts = Float64Array.from(cuts).sort();
      this.reset();
    }

    get empty() {
      return this.ranges.length === 0 && this.points.length === 0;
    }

    reset() {
      this.rangeIndex = 0;
      this.pointIndex = 0;
      this.active = [];
    }

    /** Skips everything before `pos` (rendering starts past the fold's start). */
    seek(pos) {
      this.activeAt(pos);
      while (this.pointIndex < this.points.length && this.points[this.pointIndex].at < pos) this.pointIndex++;
    }

    activeAt(pos) {
      while (this.rangeIndex < this.ranges.length && this.ranges[this.rangeIndex].start <= pos) {
        this.active.push(this.ranges[this.rangeIndex++]);
      }
      this.active = this.active.filter((r) => r.end > pos);
      return this.active;
    }

    pointsAt(pos) {
      const out = [];
      while (this.pointIndex < this.points.length && this.points[this.pointIndex].at <= pos) {
        const p = this.points[this.pointIndex++];
        if (p.at === pos) out.push(p);
      }
      return out;
    }

    /** Splits [a, b) where a range starts or ends or a point sits; call with increasing a. */
    split(a, b) {
      const out = [];
      let lo = 0;
      let hi = this.cuts.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.cuts[mid] <= a) lo = mid + 1;
        else hi = mid;
      }
      let pos = a;
      while (pos < b) {
        const next = lo < this.cuts.length && this.cuts[lo] < b ? this.cuts[lo++] : b;
        out.push({ a: pos, b: next, ranges: this.activeAt(pos).slice(), points: this.pointsAt(pos) });
        pos = next;
      }
      return out;
    }
  }

  function pointElement(p) {
    const el = h("span", { class: p.cls, title: p.title || null }, p.text || "");
    if (p.attrs) for (const [k, v] of Object.entries(p.attrs)) el.setAttribute(k, v);
    return el;
  }

  /** A span carrying the classes, title and attributes of the ranges over a segment. */
  function rangeSpan(ranges) {
    const span = document.createElement("span");
    span.className = ranges.map((r) => r.cls).join(" ");
    const title = ranges.map((r) => r.title).filter(Boolean).join("; ");
    if (title) span.title = title;
    for (const r of ranges) if (r.attrs) for (const [k, v] of Object.entries(r.attrs)) span.setAttribute(k, v);
    return span;
  }

  function renderText(container, bytes, from, to, deco) {
    if (deco.empty) {
      appendText(container, bytes, from, to);
      return;
    }
    deco.reset();
    deco.seek(from);
    for (const seg of deco.split(from, to)) {
      for (const p of seg.points) container.append(pointElement(p));
      if (seg.ranges.length === 0) {
        appendText(container, bytes, seg.a, seg.b);
      } else {
        const span = rangeSpan(seg.ranges);
        appendText(span, bytes, seg.a, seg.b);
        container.append(span);
      }
    }
    for (const p of deco.pointsAt(to)) container.append(pointElement(p));
  }

  const HEX_ROW = h("div", { class: "hex-row" },
    h("span", { class: "hex-offset" }), h("span", { class: "hex-bytes" }), h("span", { class: "hex-ascii" }));

  /** Hex rows of 16 bytes from `from`: offset (base + index), the bytes, and an ASCII gutter. */
  function renderHex(container, bytes, from, to, base, deco) {
    if (!deco.empty) {
      deco.reset();
      deco.seek(from);
    }
    const frag = document.createDocumentFragment();
    let last = null;
    for (let r = from; r < to; r += 16) {
      const end = Math.min(r + 16, to);
      const row = HEX_ROW.cloneNode(true);
      const [offset, hex, ascii] = row.children;
      offset.textContent = (base + r).toString(16).padStart(8, "0");
      const segments = deco.empty ? null : deco.split(r, end);
      if (!segments || (segments.length === 1 && !segments[0].ranges.length && !segments[0].points.length)) {
        hex.textContent = hexText(bytes, r, end, r);
        ascii.textContent = gutterText(bytes, r, end);
      } else {
        segments.forEach((seg, i) => {
          if (i > 0) hex.append((seg.a - r) % 16 === 8 ? "  " : " ");
          for (const p of seg.points) hex.append(pointElement(p));
          const text = hexText(bytes, seg.a, seg.b, r);
          const gutter = gutterText(bytes, seg.a, seg.b);
          if (seg.ranges.length) {
            const hs = rangeSpan(seg.ranges);
            hs.textContent = text;
            hex.append(hs);
            const gs = rangeSpan(seg.ranges);
            gs.textContent = gutter;
            ascii.append(gs);
          } else {
            hex.append(text);
            ascii.append(gutter);
          }
        });
      }
      frag.append(row);
      last = row;
    }
    if (!deco.empty) {
      const tail = deco.pointsAt(to);
      if (tail.length) {
        if (!last) {
          last = HEX_ROW.cloneNode(true);
          last.children[0].textContent = (base + to).toString(16).padStart(8, "0");
          frag.append(last);
        }
        for (const p of tail) last.children[1].append(" ", pointElement(p));
      }
    }
    container.append(frag);
  }

  /**
   * A payload with its view toggle and fold: `.payload[data-view]`, `.view-toggle`, and a "show all" button.
   * Options: bytes, size (all bytes, when only a preview is here), truncated, fetchAll (resolves the whole
   * payload), ranges, points, base (offset of bytes[0] for hex offsets), view, fold ((bytes) => [from, to]),
   * label (for the toggle's accessible name).
   */
  class PayloadView {
    constructor(opts) {
      this.opts = opts;
      this.bytes = opts.bytes;
      this.size = opts.size !== undefined ? opts.size : opts.bytes.length;
      this.truncated = !!opts.truncated;
      this.view = opts.view || defaultView(opts.bytes);
      this.folded = !!opts.fold;
      this.deco = new Decorations(opts.ranges, opts.points);
      this.pre = h("pre", { class: "payload", "data-view": this.view });
      this.toggle = h("button", { type: "button", class: "view-toggle", onclick: () => this.switchView() });
      this.more = h("button", { type: "button", class: "show-all", onclick: () => this.showAll() });
      this.status = h("span", { class: "payload-status", role: "status" });
      this.el = h("div", { class: "payload-box" },
        h("div", { class: "payload-tools" }, this.toggle, this.more, this.status), this.pre);
      this.render();
    }

    range() {
      if (this.folded && this.opts.fold) return this.opts.fold(this.bytes);
      return [0, this.bytes.length];
    }

    render() {
      const [from, to] = this.range();
      this.pre.dataset.view = this.view;
      this.pre.replaceChildren();
      if (from > 0) this.pre.append(h("span", { class: "fold-gap" }, `… ${fmtBytes(from)} before …\n`));
      if (this.view === "hex") renderHex(this.pre, this.bytes, from, to, this.opts.base || 0, this.deco);
      else renderText(this.pre, this.bytes, from, to, this.deco);
      if (this.view === "text" && this.folded && this.foldHides()) this.pre.append(h("span", { class: "fold-gap" }, "\n…"));
      const other = this.view === "hex" ? "text" : "hex";
      this.toggle.textContent = other;
      this.toggle.setAttribute("aria-label", `show ${this.opts.label || "payload"} as ${other}`);
      this.more.hidden = !this.foldHides();
      this.more.textContent = this.folded ? `show all ${fmtBytes(this.size)}` : "fold";
    }

    /** Whether the fold leaves bytes out (of the whole payload, not only of the preview that is here). */
    foldHides() {
      if (!this.opts.fold) return false;
      const [from, to] = this.opts.fold(this.bytes);
      return this.size - (to - from) > 0;
    }

    switchView() {
      this.view = this.view === "hex" ? "text" : "hex";
      this.render();
    }

    async showAll() {
      if (!this.folded) {
        this.folded = true;
        this.render();
        return;
      }
      if (this.truncated && this.opts.fetchAll) {
        this.status.textContent = "loading…";
        this.more.disabled = true;
        try {
          this.bytes = await this.opts.fetchAll();
          this.size = this.bytes.length;
          this.truncated = false;
          this.status.textContent = "";
        } catch (err) {
          this.status.textContent = `could not load the payload: ${err.message}`;
          return;
        } finally {
          this.more.disabled = false;
        }
      }
      this.folded = false;
      this.render();
    }
  }

  /** Marks ({kind, start, length, rule}) as ranges of .mark-redacted / .mark-volatile, shifted by -origin. */
  function markRanges(marks, origin = 0) {
    return (marks || []).map((m) => ({
      start: m.start - origin,
      end: m.start - origin + m.length,
      cls: `mark-${m.kind}`,
      title: `${m.kind}: ${m.rule}`,
    }));
  }

  // ------------------------------------------------------------------ the ladder

  const KIND_LABELS = {
    half_close: "FIN",
    close: "close",
    reset: "RST",
    connect_failed: "connect failed",
    refused: "connect refused",
    fault: "fault",
  };

  /**
   * A session's events as a ladder in `#ladder`, paged from the API. `maxSeq` stops it after that event (a
   * mismatch shows the session up to the exchange that differed).
   */
  class Ladder {
    constructor(sessionId, session, opts = {}) {
      this.id = sessionId;
      this.session = session;
      // Events are numbered from 0, so "nothing yet" is null and -1, never 0.
      this.maxSeq = opts.maxSeq === undefined ? null : opts.maxSeq;
      this.next = null;
      this.done = false;
      this.loaded = 0;
      this.total = null;
      this.lastSeq = -1;
      this.loading = null;
      this.events = h("div", { class: "events" });
      this.moreButton = h("button", { type: "button", onclick: () => this.loadNext() }, "load more events");
      this.moreText = h("span", { role: "status" });
      this.sentinel = h("div", { class: "ladder-more" }, this.moreText, " ", this.moreButton);
      this.el = h("section", { id: "ladder", "aria-label": "events" },
        h("div", { class: "ladder-head" },
          h("span", { class: "side client" }, "client ", h("small", null, session.client || "")),
          h("span", { class: "side upstream" }, "upstream ", h("small", null, session.upstream || ""))),
        this.events, this.sentinel);
      this.observer = null;
    }

    /** Loads the next page (one request at a time); resolves false when there is nothing more. */
    loadNext(limit = EVENTS_PER_PAGE) {
      if (this.done) return Promise.resolve(false);
      if (!this.loading) {
        this.loading = this.fetchPage(limit).finally(() => {
          this.loading = null;
        });
      }
      return this.loading;
    }

    async fetchPage(limit) {
      this.moreButton.disabled = true;
      this.moreText.textContent = "loading events…";
      try {
        const page = await api(`/api/sessions/${this.id}/events` +
          query({ after: this.next, limit, preview: EVENT_PREVIEW }));
        this.total = page.total;
        const frag = document.createDocumentFragment();
        for (const ev of page.events) {
          if (this.maxSeq !== null && ev.seq > this.maxSeq) {
            this.done = true;
            break;
          }
          frag.append(this.renderEvent(ev));
          this.loaded++;
          this.lastSeq = ev.seq;
        }
        this.events.append(frag);
        if (page.next === null || page.next === undefined) this.done = true;
        else this.next = page.next;
        if (this.maxSeq !== null && this.lastSeq >= this.maxSeq) this.done = true;
        this.updateSentinel();
        return true;
      } catch (err) {
        this.moreText.textContent = `could not load events: ${err.message}`;
        this.moreButton.disabled = false;
        return false;
      }
    }

    updateSentinel() {
      this.moreButton.disabled = false;
      const shown = this.maxSeq !== null ? `${plural(this.loaded, "event")} up to event ${this.maxSeq}` :
        `${fmtInt(this.loaded)} of ${plural(this.total, "event")}`;
      this.moreText.textContent = this.done ? shown : `${shown} loaded`;
      this.moreButton.hidden = this.done;
      if (this.loaded === 0 && this.done) this.moreText.textContent = "no events";
    }

    /** Loads pages as the sentinel nears the viewport, and keeps going while it stays near. */
    watch() {
      if (this.done || !("IntersectionObserver" in window)) return;
      this.observer = new IntersectionObserver((entries) => {
        if (entries.some((e) => e.isIntersecting)) this.fill();
      }, { rootMargin: "0px 0px 2000px 0px" });
      this.observer.observe(this.sentinel);
    }

    async fill() {
      for (let i = 0; i < 100 && !this.done; i++) {
        if (!(await this.loadNext())) break;
        const rect = this.sentinel.getBoundingClientRect();
        if (rect.top > window.innerHeight + 2000) break;
      }
      if (this.done && this.observer) this.observer.disconnect();
    }

    /** Loads pages until event `seq` is here (or the session ends); returns its element or null. */
    async loadUntil(seq) {
      for (let i = 0; i < 10000; i++) {
        const el = document.getElementById(`event-${seq}`);
        if (el || this.done || this.lastSeq >= seq) return el;
        // Jumping far ahead: larger pages, fewer round trips.
        if (!(await this.loadNext(JUMP_PAGE))) return null;
      }
      return null;
    }

    /** Fetches events recorded after the last one shown (a live session). */
    async poll() {
      if (this.maxSeq !== null || this.loading) return;
      if (this.done) {
        this.done = false;
        this.next = this.lastSeq >= 0 ? this.lastSeq : null;
      }
      await this.loadNext();
    }

    dispose() {
      if (this.observer) this.observer.disconnect();
    }

    renderEvent(ev) {
      const toUpstream = ev.direction === "client_to_upstream";
      const label = ev.kind === "data" ? fmtBytes(ev.size) : (KIND_LABELS[ev.kind] || ev.kind);
      const from = toUpstream ? "client" : "upstream";
      const to = toUpstream ? "upstream" : "client";
      const arrow = h("div", {
        class: `arrow ${toUpstream ? "to-upstream" : "to-client"} kind-${ev.kind}`,
        role: "img",
        "aria-label": `${from} to ${to}: ${label}`,
      }, h("span", { class: "shaft" }), h("span", { class: "head" }), h("span", { class: "arrow-label" }, label));
      const el = h("article", {
        class: `event ${toUpstream ? "c2u" : "u2c"} kind-${ev.kind}`,
        id: `event-${ev.seq}`,
        "data-seq": ev.seq,
        "data-direction": ev.direction,
        "data-kind": ev.kind,
        tabindex: "-1",
      },
      h("div", { class: "event-line" },
        h("a", { class: "seq", href: `#event-${ev.seq}`, title: `link to event ${ev.seq}` }, String(ev.seq)),
        h("span", { class: "time", title: `${fmtInt(ev.offset_ns)} ns since the session began` },
          `+${fmtNs(ev.offset_ns)}`),
        h("div", { class: "lane" }, arrow)));
      if (ev.kind === "data" && (ev.size > 0 || ev.payload)) el.append(this.payloadFor(ev));
      return el;
    }

    payloadFor(ev) {
      const bytes = decodeBase64(ev.payload);
      const view = new PayloadView({
        bytes,
        size: ev.size,
        truncated: ev.truncated,
        fetchAll: () => apiBytes(`/api/sessions/${this.id}/events/${ev.seq}/payload`),
        ranges: markRanges(ev.marks),
        fold: foldRange,
        base: 0,
        label: `event ${ev.seq}`,
      });
      return view.el;
    }
  }

  function foldRange(bytes) {
    return [0, foldEnd(bytes)];
  }

  /** Scrolls to event `seq`, highlights it and gives it focus. */
  function highlightEvent(el) {
    for (const old of document.querySelectorAll(".event.highlight")) old.classList.remove("highlight");
    el.classList.add("highlight");
    el.scrollIntoView({ block: "center" });
    el.focus({ preventScroll: true });
  }

  /** j / k: the next or previous event of the ladder, loading the next page at the end. */
  async function stepEvent(ladder, delta) {
    const events = ladder.events.children;
    if (!events.length) return;
    const current = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest(".event") : null;
    let index = current ? Array.prototype.indexOf.call(events, current) : -1;
    if (index < 0) {
      const marked = ladder.events.querySelector(".event.highlight");
      index = marked ? Array.prototype.indexOf.call(events, marked) : (delta > 0 ? -1 : events.length);
    }
    let target = index + delta;
    if (target >= events.length && !ladder.done) {
      await ladder.loadNext();
    }
    target = Math.max(0, Math.min(events.length - 1, target));
    const el = events[target];
    for (const old of document.querySelectorAll(".event.highlight")) old.classList.remove("highlight");
    el.classList.add("highlight");
    el.focus({ preventScroll: true });
    el.scrollIntoView({ block: "nearest" });
    history.replaceState(history.state, "", `${location.pathname}${location.search}#${el.id}`);
  }

  function ladderKeys(ladder) {
    return (e) => {
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      const t = e.target;
      if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
      if (e.key === "j") {
        e.preventDefault();
        stepEvent(ladder, 1);
      } else if (e.key === "k") {
        e.preventDefault();
        stepEvent(ladder, -1);
      }
    };
  }

  // ------------------------------------------------------------------ page scaffolding

  /** Records a page's first render: body[data-ready] always, the performance mark once per page load. */
  function ready(ctx, name, mark) {
    if (!ctx.alive()) return;
    document.body.dataset.ready = name;
    if (mark && !state.marked.has(mark)) {
      state.marked.add(mark);
      performance.mark(mark);
    }
  }

  function setTitle(text) {
    document.title = state.info && state.info.tape ? `${text} · ${state.info.tape} · Tapedeck` : `${text} · Tapedeck`;
  }

  function dl(pairs) {
    const list = h("dl", { class: "meta" });
    for (const [term, value] of pairs) {
      if (value === null || value === undefined || value === "") continue;
      list.append(h("div", null, h("dt", null, term), h("dd", null, value)));
    }
    return list;
  }

  // ------------------------------------------------------------------ sessions page

  const SESSION_COLUMNS = [
    { key: "id", label: "id", sort: "id", num: true },
    { key: "route", label: "route", sort: "route" },
    { key: "label", label: "label", sort: "label", optional: true },
    { key: "client", label: "client", sort: "client" },
    { key: "start", label: "start", sort: "start" },
    { key: "duration", label: "duration", sort: "duration", num: true },
    { key: "client_bytes", label: "client bytes", sort: "client_bytes", num: true },
    { key: "upstream_bytes", label: "upstream bytes", sort: "upstream_bytes", num: true },
    { key: "events", label: "events", sort: "events", num: true },
    { key: "outcome", label: "outcome", sort: "outcome" },
    { key: "tls", label: "TLS" },
    { key: "transport", label: "transport" },
  ];
  const FILTERS = ["route", "outcome", "label", "since", "until", "q"];

  function readSessionQuery() {
    const p = new URLSearchParams(location.search);
    const q = {};
    for (const key of FILTERS) q[key] = p.get(key) || "";
    q.regex = p.get("regex") === "1";
    q.probes = p.get("probes") === "1";
    q.sort = p.get("sort") || "id";
    q.order = p.get("order") === "desc" ? "desc" : "asc";
    q.offset = Math.max(0, parseInt(p.get("offset") || "0", 10) || 0);
    return q;
  }

  /** The page's query string, which is also the API's: a filtered view is a link. */
  function sessionQueryParams(q) {
    const params = {};
    for (const key of FILTERS) params[key] = q[key];
    params.regex = q.regex && q.q ? "1" : null;
    params.probes = q.probes ? "1" : null;
    params.sort = q.sort !== "id" ? q.sort : null;
    params.order = q.order === "desc" ? "desc" : null;
    params.offset = q.offset || null;
    return params;
  }

  function cellContent(s, key) {
    switch (key) {
      case "id":
        return h("a", { href: `/sessions/${s.id}` }, String(s.id));
      case "duration":
        return fmtNs(s.duration_ns);
      case "client_bytes":
      case "upstream_bytes":
      case "events":
        return fmtInt(s[key]);
      case "tls":
        return tlsSummary(s.tls);
      default:
        return s[key] === null || s[key] === undefined ? "" : String(s[key]);
    }
  }

  function sessionRow(s, columns) {
    const tr = h("tr", { "data-session-id": s.id });
    for (const col of columns) {
      const td = h("td", { "data-col": col.key, class: col.num ? "num" : null }, cellContent(s, col.key));
      if (col.key === "outcome") td.classList.add(`outcome-${s.outcome}`);
      if (col.key === "tls" && s.tls) td.title = tlsTitle(s.tls);
      tr.append(td);
    }
    return tr;
  }

  function selectFilter(id, label, values, current) {
    const select = h("select", { id, name: id.replace("filter-", "") }, h("option", { value: "" }, "any"));
    const all = (values || []).slice();
    if (current && !all.includes(current)) all.push(current);
    for (const v of all) select.append(h("option", { value: v }, v));
    select.value = current || "";
    return h("label", null, label, select);
  }

  async function renderSessions(ctx) {
    setTitle("Sessions");
    let q = readSessionQuery();
    let requestNo = 0;
    const rowsPromise = api(`/api/sessions${query({ ...sessionQueryParams(q), limit: SESSIONS_PER_PAGE })}`)
      .then((v) => ({ ok: v }), (err) => ({ err }));
    const info = await state.infoPromise.catch(() => null);
    if (!ctx.alive()) return;
    const columns = SESSION_COLUMNS.filter((c) => !c.optional || (info && info.labels && info.labels.length));

    const error = h("p", { class: "error", role: "alert", id: "sessions-error", hidden: true });
    const form = h("form", { id: "filters", class: "filters", role: "search" },
      selectFilter("filter-route", "route", info && info.routes, q.route),
      selectFilter("filter-outcome", "outcome", info && info.outcomes, q.outcome),
      selectFilter("filter-label", "label", info && info.labels, q.label),
      h("label", null, "since", h("input", { id: "filter-since", name: "since", type: "text", size: 20,
        placeholder: "2026-11-25T10:00:00Z", value: q.since })),
      h("label", null, "until", h("input", { id: "filter-until", name: "until", type: "text", size: 20,
        placeholder: "2026-11-26", value: q.until })),
      h("label", { class: "grow" }, "content", h("input", { id: "filter-q", name: "q", type: "search",
        placeholder: "bytes, e.g. GET /a or \\x00\\x01", value: q.q })),
      h("label", { class: "check" }, h("input", { id: "filter-regex", name: "regex", type: "checkbox",
        checked: q.regex }), "regex"),
      h("label", { class: "check" }, h("input", { id: "filter-probes", name: "probes", type: "checkbox",
        checked: q.probes }), "probes"),
      h("button", { type: "submit" }, "Apply"),
      h("a", { href: "/", class: "reset" }, "Clear"));

    const headRow = h("tr");
    const sortButtons = new Map();
    for (const col of columns) {
      const th = h("th", { scope: "col", class: col.num ? "num" : null });
      if (col.sort) {
        th.dataset.sort = col.sort;
        const button = h("button", { type: "button", onclick: () => sortBy(col.sort) }, col.label,
          h("span", { class: "sort-ind", "aria-hidden": "true" }));
        sortButtons.set(col.sort, th);
        th.append(button);
      } else {
        th.textContent = col.label;
      }
      headRow.append(th);
    }
    const tbody = h("tbody");
    const table = h("table", { id: "sessions", class: "grid" }, h("thead", null, headRow), tbody);
    const prev = h("button", { type: "button", id: "page-prev", onclick: () => page(-1) }, "← prev");
    const next = h("button", { type: "button", id: "page-next", onclick: () => page(1) }, "next →");
    const pageInfo = h("span", { id: "page-info", role: "status" });
    const pager = h("nav", { class: "pager", "aria-label": "pages" }, prev, pageInfo, next);
    ctx.app.append(h("h1", null, "Sessions"), form, error, pager, h("div", { class: "table-wrap" }, table));

    let total = 0;
    const show = (result) => {
      if (result.err) {
        error.textContent = result.err.message;
        error.hidden = false;
        tbody.replaceChildren(h("tr", null, h("td", { colspan: columns.length, class: "empty" },
          "No sessions shown: the server refused the filter.")));
        total = 0;
        pageInfo.textContent = "";
      } else {
        error.hidden = true;
        const data = result.ok;
        total = data.total;
        const frag = document.createDocumentFragment();
        for (const s of data.sessions) frag.append(sessionRow(s, columns));
        if (!data.sessions.length) {
          frag.append(h("tr", null, h("td", { colspan: columns.length, class: "empty" }, "No sessions match.")));
        }
        tbody.replaceChildren(frag);
        const first = data.sessions.length ? q.offset + 1 : 0;
        const last = q.offset + data.sessions.length;
        pageInfo.textContent = data.sessions.length ? `${fmtInt(first)}–${fmtInt(last)} of ${fmtInt(total)}` :
          `0 of ${fmtInt(total)}`;
      }
      prev.disabled = q.offset <= 0;
      next.disabled = q.offset + SESSIONS_PER_PAGE >= total;
      for (const [key, th] of sortButtons) {
        const active = key === q.sort;
        th.setAttribute("aria-sort", active ? (q.order === "desc" ? "descending" : "ascending") : "none");
        th.querySelector(".sort-ind").textContent = active ? (q.order === "desc" ? " ▼" : " ▲") : "";
      }
    };

    const load = async (push) => {
      const no = ++requestNo;
      if (push) {
        const url = `/${query(sessionQueryParams(q))}`;
        history.pushState(null, "", url);
        state.key = location.pathname + location.search;
      }
      const result = await api(`/api/sessions${query({ ...sessionQueryParams(q), limit: SESSIONS_PER_PAGE })}`)
        .then((v) => ({ ok: v }), (err) => ({ err }));
      if (no === requestNo && ctx.alive()) show(result);
    };

    const sortBy = (key) => {
      if (q.sort === key) q.order = q.order === "asc" ? "desc" : "asc";
      else {
        q.sort = key;
        q.order = "asc";
      }
      q.offset = 0;
      load(true);
    };
    const page = (delta) => {
      q.offset = Math.max(0, q.offset + delta * SESSIONS_PER_PAGE);
      load(true);
    };
    const apply = () => {
      const data = new FormData(form);
      for (const key of FILTERS) q[key] = (data.get(key) || "").trim();
      q.regex = data.get("regex") !== null;
      q.probes = data.get("probes") !== null;
      q.offset = 0;
      load(true);
    };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      apply();
    });
    form.addEventListener("change", (e) => {
      if (e.target.tagName === "SELECT" || e.target.id === "filter-probes") apply();
    });
    // A table row opens its session; the id cell's link is what keyboards and new tabs use.
    tbody.addEventListener("click", (e) => {
      if (e.target.closest("a") || e.button !== 0 || window.getSelection().toString()) return;
      const tr = e.target.closest("tr[data-session-id]");
      if (tr) navigate(`/sessions/${tr.dataset.sessionId}`);
    });

    ctx.refresh = () => load(false);
    show(await rowsPromise);
    ready(ctx, "sessions", "tapedeck:sessions-rendered");
  }

  // ------------------------------------------------------------------ session page

  function exportLinks(session) {
    const links = { pcapng: null, jsonl: null };
    const ex = session.exports;
    if (Array.isArray(ex)) {
      for (const url of ex) {
        if (/pcapng/.test(url)) links.pcapng = url;
        else if (/jsonl/.test(url)) links.jsonl = url;
      }
    } else if (ex && typeof ex === "object") {
      links.pcapng = ex.pcapng || null;
      links.jsonl = ex.jsonl || null;
    }
    links.pcapng = links.pcapng || `/api/sessions/${session.id}/export.pcapng`;
    links.jsonl = links.jsonl || `/api/sessions/${session.id}/export.jsonl`;
    return h("p", { class: "downloads" },
      h("a", { class: "download-pcapng", href: links.pcapng, download: `session-${session.id}.pcapng` },
        "download pcapng"), " ",
      h("a", { class: "download-jsonl", href: links.jsonl, download: `session-${session.id}.jsonl` },
        "download JSONL"));
  }

  function spanCount(value) {
    if (value === null || value === undefined) return null;
    if (Array.isArray(value)) return value.length ? fmtInt(value.length) : null;
    return value ? fmtInt(value) : null;
  }

  function sessionMeta(s) {
    return dl([
      ["route", s.route],
      ["label", s.label],
      ["run", s.run],
      ["client", s.client],
      ["upstream", s.upstream],
      ["listen", s.listen],
      ["protocol", s.protocol],
      ["transport", s.transport],
      ["start", s.start],
      ["duration", fmtNs(s.duration_ns)],
      ["client bytes", fmtInt(s.client_bytes)],
      ["upstream bytes", fmtInt(s.upstream_bytes)],
      ["events", fmtInt(s.events)],
      ["outcome", h("span", { class: `outcome-${s.outcome}` }, s.outcome || "")],
      ["TLS", s.tls ? h("span", { title: tlsTitle(s.tls) }, tlsSummary(s.tls)) : null],
      ["redacted spans", spanCount(s.redacted_spans)],
      ["volatile spans", spanCount(s.volatile_spans)],
    ]);
  }

  function streamSection(id) {
    const panes = {};
    const details = h("details", { class: "streams", id: "streams" },
      h("summary", null, "Whole streams, one per direction"));
    for (const dir of ["client_to_upstream", "upstream_to_client"]) {
      panes[dir] = h("div", { id: `stream-${dir}`, class: "stream", "data-direction": dir },
        h("h3", null, dir === "client_to_upstream" ? "client → upstream" : "upstream → client"));
      details.append(panes[dir]);
    }
    let loaded = false;
    details.addEventListener("toggle", () => {
      if (!details.open || loaded) return;
      loaded = true;
      for (const dir of Object.keys(panes)) loadStream(id, dir, panes[dir]);
    });
    return details;
  }

  async function loadStream(id, dir, pane) {
    const status = h("p", { class: "muted", role: "status" }, "loading…");
    pane.append(status);
    try {
      const s = await api(`/api/sessions/${id}/stream${query({ direction: dir })}`);
      const bytes = decodeBase64(s.payload);
      status.textContent = s.truncated ? `the first ${fmtBytes(bytes.length)} of ${fmtBytes(s.total)}` :
        fmtBytes(s.total);
      const points = (s.boundaries || []).filter((b) => b > 0).map((b) => ({
        at: b, cls: "chunk-mark", title: `an event begins at stream offset ${fmtInt(b)}`,
      }));
      const view = new PayloadView({
        bytes,
        size: bytes.length,
        ranges: markRanges(s.marks),
        points,
        fold: (b) => [0, Math.min(b.length, STREAM_FOLD_BYTES)],
        label: `the ${dir.replace(/_/g, " ")} stream`,
      });
      pane.append(view.el);
    } catch (err) {
      status.textContent = "";
      pane.append(errorBox(`could not load the stream: ${err.message}`));
    }
  }

  async function renderSession(ctx, idText) {
    const id = Number(idText);
    setTitle(`Session ${id}`);
    const sessionPromise = api(`/api/sessions/${id}`);
    let session;
    try {
      session = await sessionPromise;
    } catch (err) {
      if (!ctx.alive()) return;
      ctx.app.append(h("h1", null, `Session ${id}`), errorBox(err.message));
      ready(ctx, "session", null);
      return;
    }
    if (!ctx.alive()) return;
    const ladder = new Ladder(id, session);
    const header = h("header", { class: "session-head" });
    const fillHeader = (s) => header.replaceChildren(
      h("div", { class: "title-row" }, h("h1", null, `Session ${s.id}`), exportLinks(s)), sessionMeta(s));
    fillHeader(session);
    ctx.app.append(header, streamSection(id), ladder.el);
    const first = ladder.loadNext();
    await first;
    if (!ctx.alive()) return;
    ready(ctx, "session", "tapedeck:session-rendered");
    ladder.watch();
    const keys = ladderKeys(ladder);
    document.addEventListener("keydown", keys);
    const onHash = async () => {
      const m = /^#event-(\d+)$/.exec(location.hash);
      if (!m) return;
      const el = await ladder.loadUntil(Number(m[1]));
      if (el && ctx.alive()) highlightEvent(el);
    };
    ctx.onHash = onHash;
    ctx.dispose = () => {
      document.removeEventListener("keydown", keys);
      ladder.dispose();
    };
    ctx.refresh = async () => {
      try {
        const s = await api(`/api/sessions/${id}`);
        if (ctx.alive()) fillHeader(s);
      } catch (_) {
        /* the header keeps what it had */
      }
      if (ctx.alive()) await ladder.poll();
    };
    onHash();
  }

  // ------------------------------------------------------------------ mismatches

  function noReport() {
    return h("p", { class: "notice" },
      "This inspector has no replay report, so there are no mismatches to show. Start it with ",
      h("code", null, "tapedeck web TAPE --report report.json"), ", or attach it to a replay with ",
      h("code", null, "--web ADDR"), ".");
  }

  async function renderMismatches(ctx) {
    setTitle("Mismatches");
    let data;
    ctx.app.append(h("h1", null, "Mismatches"));
    const body = h("div");
    ctx.app.append(body);
    const load = async () => {
      try {
        data = await api("/api/mismatches");
      } catch (err) {
        if (ctx.alive()) body.replaceChildren(errorBox(err.message));
        return;
      }
      if (ctx.alive()) body.replaceChildren(...mismatchList(data));
    };
    ctx.refresh = load;
    await load();
    ready(ctx, "mismatches", "tapedeck:mismatches-rendered");
  }

  function mismatchList(data) {
    if (!data.report) return [noReport()];
    const out = [];
    if (data.summary) out.push(h("p", { class: "summary" }, data.summary));
    const tbody = h("tbody");
    for (const m of data.mismatches) {
      tbody.append(h("tr", { "data-mismatch": m.index },
        h("td", { class: "num" }, h("a", { href: `/mismatches/${m.index}` }, String(m.index))),
        h("td", null, m.route || ""),
        h("td", null, m.client || ""),
        h("td", { class: "num" }, m.closest_session === null || m.closest_session === undefined ? "none" :
          h("a", { href: `/sessions/${m.closest_session}` }, String(m.closest_session))),
        h("td", { class: "num" }, m.offset === null || m.offset === undefined ? "" : fmtInt(m.offset)),
        h("td", null, m.reason || ""),
        h("td", null, m.hint ? h("code", null, m.hint) : "")));
    }
    if (!data.mismatches.length) {
      tbody.append(h("tr", null, h("td", { colspan: 7, class: "empty" }, "No mismatches: every connection replayed.")));
    }
    out.push(h("div", { class: "table-wrap" }, h("table", { id: "mismatches", class: "grid" },
      h("thead", null, h("tr", null, ["#", "route", "client", "closest session", "offset", "reason", "hint"]
        .map((t) => h("th", { scope: "col" }, t)))), tbody)));
    return out;
  }

  /** One side of a mismatch: its bytes, the first differing one as .first-diff, the rest after it marked. */
  function diffPane(cls, title, side, view) {
    const bytes = decodeBase64(side.payload);
    const d = side.difference;
    const ranges = [];
    const points = [];
    if (d < bytes.length) {
      ranges.push({ start: d, end: d + 1, cls: "first-diff", title: "the first byte that differs",
        attrs: { "data-byte": HEX[bytes[d]] } });
      if (d + 1 < bytes.length) ranges.push({ start: d + 1, end: bytes.length, cls: "after-diff" });
    } else {
      points.push({ at: bytes.length, cls: "first-diff diff-end", text: "⟨end⟩",
        title: "the bytes end here", attrs: { "data-byte": "end" } });
    }
    const window = (b) => {
      if (b.length <= 4 * DIFF_CONTEXT) return [0, b.length];
      const from = Math.max(0, Math.floor((d - DIFF_CONTEXT) / 16) * 16);
      return [from, Math.min(b.length, d + DIFF_CONTEXT)];
    };
    const payload = new PayloadView({
      bytes, ranges, points, view, fold: window, base: side.start || 0, label: `the ${cls} bytes`,
    });
    return h("section", { class: `diff-pane ${cls}` },
      h("h3", null, title),
      h("p", { class: "muted" }, `${fmtBytes(bytes.length)} from stream offset ${fmtInt(side.start || 0)}; ` +
        `first difference at byte ${fmtInt(d)}`),
      payload.el);
  }

  async function renderMismatch(ctx, nText) {
    const n = Number(nText);
    setTitle(`Mismatch ${n}`);
    let m;
    try {
      m = await api(`/api/mismatches/${n}`);
    } catch (err) {
      if (!ctx.alive()) return;
      ctx.app.append(h("h1", null, `Mismatch ${n}`), errorBox(err.message));
      ready(ctx, "mismatch", null);
      return;
    }
    if (!ctx.alive()) return;
    const hasSession = m.session !== null && m.session !== undefined;
    const hasSeq = m.seq !== null && m.seq !== undefined;
    const hint = h("div", { id: "diff-hint", class: m.hint ? "hint" : "hint none" },
      m.hint ? [h("strong", null, "Hint: "), h("span", { class: "hint-text" }, m.hint)] :
        "No rule proposed: the differing bytes look like no id, timestamp or digest. If they may differ on every " +
        "run, a --volatile rule over them lets them (see docs/rules.md); if not, the code under test changed.");
    ctx.app.append(
      h("h1", null, `Mismatch ${n}`),
      h("p", { class: "reason" }, m.reason || ""),
      dl([
        ["route", m.route],
        ["client", m.client],
        ["closest session", hasSession ?
          h("a", { href: `/sessions/${m.session}${hasSeq ? `#event-${m.seq}` : ""}` }, String(m.session)) : "none"],
        ["exchange", m.exchange],
        ["event", m.seq],
        ["recorded offset", m.recorded_offset === null || m.recorded_offset === undefined ? null :
          fmtInt(m.recorded_offset)],
        ["expected", m.expected ? h("code", null, m.expected) : null],
        ["actual", m.actual ? h("code", null, m.actual) : null],
      ]),
      hint);
    const live = m.live || { payload: "", start: 0, difference: 0 };
    const recorded = hasSession ? m.recorded : null;
    // Both sides in the same view, chosen by the recorded bytes (the live ones are partly an excerpt).
    const view = defaultView(decodeBase64(recorded ? recorded.payload : live.payload));
    const diff = h("section", { id: "diff", class: recorded ? "two" : "one", "aria-label": "recorded and live bytes" });
    if (recorded) diff.append(diffPane("recorded", `recorded (session ${m.session})`, recorded, view));
    diff.append(diffPane("live", "live", live, view));
    ctx.app.append(diff);
    if (hasSession) {
      let session;
      try {
        session = await api(`/api/sessions/${m.session}`);
      } catch (err) {
        if (ctx.alive()) ctx.app.append(errorBox(`session ${m.session}: ${err.message}`));
      }
      if (session && ctx.alive()) {
        const ladder = new Ladder(m.session, session, { maxSeq: hasSeq ? m.seq : null });
        ctx.app.append(h("h2", null, "Session ", h("a", { href: `/sessions/${m.session}` }, String(m.session)),
          hasSeq ? ` up to event ${m.seq}` : ""), ladder.el);
        await ladder.loadNext();
        ready(ctx, "mismatch", "tapedeck:mismatch-rendered");
        const keys = ladderKeys(ladder);
        document.addEventListener("keydown", keys);
        ctx.dispose = () => {
          document.removeEventListener("keydown", keys);
          ladder.dispose();
        };
        if (hasSeq) {
          const el = await ladder.loadUntil(m.seq);
          if (el && ctx.alive()) el.classList.add("highlight");
        }
        ladder.watch();
        return;
      }
    }
    ready(ctx, "mismatch", "tapedeck:mismatch-rendered");
  }

  function renderNotFound(ctx) {
    setTitle("Not found");
    ctx.app.append(h("h1", null, "Not found"),
      h("p", null, "The inspector has no page here. ", h("a", { href: "/" }, "Back to the sessions"), "."));
    ready(ctx, "not-found", null);
  }

  // ------------------------------------------------------------------ routing, live mode, start

  const ROUTES = [
    [/^\/$/, renderSessions, "sessions"],
    [/^\/sessions\/(\d+)\/?$/, renderSession, "sessions"],
    [/^\/mismatches\/?$/, renderMismatches, "mismatches"],
    [/^\/mismatches\/(\d+)\/?$/, renderMismatch, "mismatches"],
  ];

  async function route() {
    const token = ++state.navToken;
    if (state.page && state.page.dispose) state.page.dispose();
    delete document.body.dataset.ready;
    const app = document.getElementById("app");
    app.replaceChildren();
    const ctx = { app, alive: () => token === state.navToken, refresh: null, dispose: null, onHash: null };
    state.page = ctx;
    state.key = location.pathname + location.search;
    for (const [pattern, render, section] of ROUTES) {
      const m = pattern.exec(location.pathname);
      if (!m) continue;
      for (const a of document.querySelectorAll(".topnav a")) {
        if (a.dataset.section === section) a.setAttribute("aria-current", "page");
        else a.removeAttribute("aria-current");
      }
      try {
        await render(ctx, ...m.slice(1));
      } catch (err) {
        if (ctx.alive()) {
          app.append(errorBox(`The page failed: ${err.message}`));
          ready(ctx, "error", null);
        }
      }
      return;
    }
    renderNotFound(ctx);
  }

  function navigate(url) {
    history.pushState(null, "", url);
    // Scroll before rendering, so a #event-N target of the new page wins over the reset.
    window.scrollTo(0, 0);
    route();
  }

  /** In-app links route without a reload; modified clicks, downloads and API links behave as links do. */
  function onClick(e) {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = e.target.closest && e.target.closest("a[href]");
    if (!a || a.target || a.hasAttribute("download")) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || /^\/(api|assets)\//.test(url.pathname)) return;
    if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
    e.preventDefault();
    navigate(url.pathname + url.search + url.hash);
  }

  function onPopState() {
    if (location.pathname + location.search === state.key && state.page && state.page.onHash) state.page.onHash();
    else route();
  }

  function showInfo(info) {
    const tape = document.getElementById("tape-name");
    if (tape) tape.textContent = info.tape || "";
    const badge = document.getElementById("live-badge");
    if (badge) {
      badge.hidden = !info.live;
      badge.textContent = info.mode && info.mode !== "view" ? `live · ${info.mode}` : "live";
    }
    const count = document.getElementById("mismatch-count");
    if (count) {
      count.hidden = !(info.report && info.mismatches);
      count.textContent = info.mismatches ? fmtInt(info.mismatches) : "";
    }
  }

  function infoChanged(a, b) {
    return ["sessions", "last_session", "mismatches", "report"].some((k) => a[k] !== b[k]);
  }

  /** Attached to a deck: polls /api/info once a second and refreshes the page when something arrived. */
  function startPolling() {
    if (state.polling || !state.info || !state.info.live) return;
    state.polling = true;
    const tick = async () => {
      if (!state.polling) return;
      try {
        const info = await api("/api/info");
        const changed = infoChanged(state.info, info);
        state.info = info;
        showInfo(info);
        document.getElementById("live-badge").classList.remove("offline");
        if (changed && state.page && state.page.refresh) {
          const x = window.scrollX;
          const y = window.scrollY;
          await state.page.refresh();
          window.scrollTo(x, y);
        }
      } catch (_) {
        document.getElementById("live-badge").classList.add("offline");
      }
      if (state.polling) state.pollTimer = setTimeout(tick, POLL_MS);
    };
    state.pollTimer = setTimeout(tick, POLL_MS);
  }

  function stopPolling() {
    state.polling = false;
    clearTimeout(state.pollTimer);
  }

  function start() {
    state.infoPromise = api("/api/info");
    state.infoPromise.then((info) => {
      state.info = info;
      showInfo(info);
      startPolling();
    }, () => {});
    document.addEventListener("click", onClick);
    window.addEventListener("popstate", onPopState);
    window.addEventListener("hashchange", () => state.page && state.page.onHash && state.page.onHash());
    window.addEventListener("pagehide", stopPolling);
    window.addEventListener("pageshow", (e) => {
      if (e.persisted) startPolling();
    });
    route();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
