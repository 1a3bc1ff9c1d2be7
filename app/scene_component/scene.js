/* HPO Studio's 3D viewer: a Streamlit component (the v1 postMessage protocol, no build step).
 *
 * The scene (core.scene.browser_scene: layer meshes, connections, one outline per layer) is
 * fetched once per trial as a .vtksz file and drawn by vtk.js's OfflineLocalView.  Every
 * colouring's per-layer colours arrive with it in the args, so a colour change or a layer
 * highlight restyles the actors here: nothing is rebuilt or sent again.  Labels and the legend
 * are HTML over and under the canvas, so they stay readable at any width; labels that would
 * overlap are hidden (the layer table beside the scene names every layer).
 *
 * Beside the stage (under it on a narrow screen) a table lists every layer with its shape and
 * health figures.  Clicking a layer (its mesh, its label or its row) selects it: it is outlined
 * here at once, its row marked, and the app hears of it ({layer, pick}) to show that layer's
 * details; clicking it again clears it.  The table is drawn here, not by Streamlit, so a new
 * tab does not load Streamlit's data grid (~1.2 MB of script) before the scene.
 * A layer is found by projecting each mesh's bounding box to the screen (the nearest box that
 * holds the click wins), so no vtk.js picker is needed; a drag that turns the camera is no click.
 *
 * window.hpoScene exposes the state to the browser tests and the bench (applied: the last
 * restyle, with when it was drawn and painted; clickAt: when a colour button was clicked).
 */
(function () {
  "use strict";
  var S = { args: null, sceneKey: null, ready: false, colorBy: null, pending: null, highlight: null,
            rw: null, renderer: null, labels: [], restyles: 0, labelsShown: 0, applied: null,
            pendingLayer: undefined, picks: 0 };
  window.hpoScene = S;
  var LABEL_MARGIN_Y = 38, LABEL_MARGIN_X = 30; // px kept free around the network for its labels
  var DIMMED = 0.45; // the other layers' opacity while one is selected (as core.scene's highlight)

  function send(type, extra) {
    window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type: type }, extra || {}), "*");
  }
  function setHeight() { send("streamlit:setFrameHeight", { height: document.body.scrollHeight }); }
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function rgb(hex) {
    var n = parseInt(hex.slice(1), 16);
    return [(n >> 16 & 255) / 255, (n >> 8 & 255) / 255, (n & 255) / 255];
  }
  function faded(c, bg, a) { return [0, 1, 2].map(function (i) { return c[i] * a + bg[i] * (1 - a); }); }
  // ms since the epoch, on the wall clock (Date.now).  Not performance.timeOrigin + performance.now():
  // headless Chromium here has given a click and its paint an epoch apart that way.
  function now() { return Date.now(); }
  // when an event happened: now less its age on the page's monotonic clock (its timeStamp is
  // relative to the page's time origin, or since the epoch in some browsers); an age that reads
  // negative or over a minute counts as none
  function happened(ev) {
    var age = ev.timeStamp > 1e12 ? now() - ev.timeStamp : performance.now() - ev.timeStamp;
    return now() - (age >= 0 && age < 60000 ? age : 0);
  }
  function status(text) { $("status").textContent = text; }

  // ------------------------------------------------------------------ colour buttons and legend

  function buildBar(args) {
    var bar = $("bar");
    if (bar.childElementCount) return;
    args.colorings.forEach(function (c) {
      var b = el("button", null, c.label);
      b.type = "button";
      b.title = c.help;
      b.dataset.key = c.key;
      b.addEventListener("click", function (ev) { S.clickAt = happened(ev); choose(c.key); });
      bar.appendChild(b);
    });
  }

  function choose(key) {
    if (key === S.colorBy) return;
    S.pending = key; // until the app's next args agree, they must not switch it back
    applyColour(key);
    sendValue();
  }

  // What the app reads back: the colouring, the selected layer and how many picks were made
  // (a new pick of the same layer still counts as one).
  function sendValue() {
    var layer = S.pendingLayer !== undefined ? S.pendingLayer : S.highlight;
    send("streamlit:setComponentValue",
         { value: { color_by: S.colorBy, layer: layer || null, pick: S.picks }, dataType: "json" });
  }

  function selectLayer(id) {
    id = id === S.highlight ? null : id; // the selected layer again: clear
    S.picks += 1;
    S.pendingLayer = id;
    S.highlight = id;
    S.pickAt = now();
    markRow();
    restyle();
    sendValue();
  }

  // The layer under a click at (x, y) px of the stage: the nearest whose projected box holds it.
  function layerAt(x, y) {
    var W = $("stage").clientWidth, H = $("stage").clientHeight, r = S.renderer, actors = r.getActors();
    var cam = r.getActiveCamera().getPosition(), best = null;
    S.args.layers.forEach(function (lay) {
      var b = actors[lay.mesh].getBounds(), x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
      [b[0], b[1]].forEach(function (bx) { [b[2], b[3]].forEach(function (by) { [b[4], b[5]].forEach(function (bz) {
        var p = r.worldToNormalizedDisplay(bx, by, bz, W / H);
        x0 = Math.min(x0, p[0] * W); x1 = Math.max(x1, p[0] * W);
        y0 = Math.min(y0, (1 - p[1]) * H); y1 = Math.max(y1, (1 - p[1]) * H);
      }); }); });
      if (x < x0 || x > x1 || y < y0 || y > y1) return;
      var c = [(b[0] + b[1]) / 2 - cam[0], (b[2] + b[3]) / 2 - cam[1], (b[4] + b[5]) / 2 - cam[2]];
      var d = dot(c, c);
      if (!best || d < best.d) best = { id: lay.id, d: d };
    });
    return best && best.id;
  }

  function listenForPicks() {
    var stage = $("stage"), down = null;
    stage.addEventListener("pointerdown", function (ev) { down = [ev.clientX, ev.clientY]; });
    stage.addEventListener("pointerup", function (ev) {
      if (!down || !S.ready) return;
      var moved = Math.abs(ev.clientX - down[0]) + Math.abs(ev.clientY - down[1]);
      down = null;
      if (moved > 5) return; // a drag turned the camera
      var box = stage.getBoundingClientRect();
      var label = ev.target.closest && ev.target.closest(".lbl");
      var id = label ? label.dataset.layer : layerAt(ev.clientX - box.left, ev.clientY - box.top);
      if (id) selectLayer(id);
    });
  }

  function applyColour(key) {
    S.colorBy = key;
    Array.prototype.forEach.call($("bar").children, function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.key === key));
    });
    drawLegend();
    restyle();
  }

  function drawLegend() {
    var c = S.args.colorings.filter(function (x) { return x.key === S.colorBy; })[0];
    var box = $("legend");
    box.textContent = "";
    if (!c) return;
    var grad = el("span", "grad");
    grad.style.background = "linear-gradient(to right, " + S.args.stops.join(", ") + ")";
    box.append(el("span", null, c.low), grad, el("span", null, c.high));
    if (S.args.unknown[c.key]) {
      var grey = el("span", "grey");
      grey.style.background = S.args.unknown_color;
      box.append(grey, el("span", null, "not measured"));
    }
    box.append(el("span", "what", c.help + " Cyan outlines the selected layer."));
    setHeight();
  }

  // ------------------------------------------------------------------ the scene

  function restyle() {
    if (!S.ready) return;
    var actors = S.renderer.getActors(), hl = S.highlight;
    // Opaque, faded toward the background by the layer's opacity (and dimmed around a selected
    // layer): the scene arrives opaque the same way (core.scene.faded), so vtk.js never needs
    // its translucent pass, whose shaders a software-WebGL browser compiles slowly.
    var bg = rgb(S.args.background);
    S.args.layers.forEach(function (lay) {
      var p = actors[lay.mesh].getProperty();
      var c = faded(rgb(lay.colors[S.colorBy]), bg, lay.opacity * (hl && hl !== lay.id ? DIMMED : 1));
      p.setColor(c[0], c[1], c[2]);
      p.setDiffuseColor(c[0], c[1], c[2]);
      p.setAmbientColor(c[0], c[1], c[2]);
      actors[lay.outline].setVisibility(hl === lay.id);
    });
    S.rw.render();
    S.restyles += 1;
    placeLabels();
    // when this restyle was drawn and then painted (ms since the epoch, comparable with the
    // parent page's clock): the browser tests and the bench time a click to it
    var applied = S.applied = { colorBy: S.colorBy, highlight: hl, at: now(), painted: null };
    requestAnimationFrame(function () { applied.painted = now(); });
  }

  // vtk.js's viewer runs as soon as it has loaded (index.html preloads it), not once the app's
  // arguments are here: they usually come first, and it then starts the scene through
  // window.loadDataSet, which it calls when it has run.
  var vtk = { start: null };
  window.loadDataSet = function () { if (vtk.start) vtk.start(); };
  function loadViewer() {
    var s = document.createElement("script");
    s.type = "module";
    s.src = document.querySelector('link[rel="modulepreload"]').getAttribute("href");
    s.onerror = function () { status("The 3D viewer script could not be loaded (" + s.src + ")."); };
    document.head.appendChild(s);
  }

  function load(args) {
    window.global = window.global || {};
    var opts = args.scene_url ? { fileURL: args.scene_url } : { base64Str: args.scene_b64 };
    var started = false;
    function go() {
      if (started) return;
      started = true;
      // The viewer offers a file drop zone when it has loaded nothing 100 ms after it ran (the
      // app's arguments were slow to come): not wanted here.
      var drop = document.querySelector('input[type="file"][accept*="vtksz"]');
      if (drop) {
        while (drop.parentElement !== document.body) drop = drop.parentElement;
        drop.remove();
        document.body.removeAttribute("class"); // its full-screen class
      }
      window.OfflineLocalView.load($("view"), opts);
      waitReady();
    }
    if (!args.script_url) { // the server could not write vtk.js's viewer beside the component
      status("The 3D viewer is unavailable: the server could not write its script (see logs/hpo.log).");
      return;
    }
    status("Loading the 3D scene…");
    if (window.OfflineLocalView) return go();
    vtk.start = go;
  }

  function waitReady() {
    (function poll() {
      var rw = (window.global || {}).renderWindow;
      var rs = rw ? rw.getRenderers() : [];
      var r = rs[rs.length - 1];
      var actors = r ? r.getActors() : [];
      var done = actors.length === S.args.actors && actors.every(function (a) {
        var d = a.getMapper() && a.getMapper().getInputData();
        return d && d.getNumberOfPoints() > 0;
      });
      if (!done) { requestAnimationFrame(poll); return; }
      S.rw = rw;
      S.renderer = r;
      S.ready = true;
      makeLabels();
      listenForPicks();
      fit();
      restyle();
      $("view").style.visibility = "visible";
      status("");
      r.getActiveCamera().onModified(schedulePlace);
      // The frame's height follows the legend (its text differs per colouring), which fires
      // "resize" too: refit only when the stage itself changed size, or a recolour would undo
      // the user's zoom and pan.
      var size = stageSize();
      window.addEventListener("resize", function () {
        requestAnimationFrame(function () {
          var now = stageSize();
          if (now === size) { placeLabels(); return; }
          size = now;
          fit(); S.rw.render(); placeLabels();
        });
      });
      S.readyAt = performance.now();
    })();
  }

  // The whole network and its label bands in view at this frame's aspect ratio (vtk.js keeps
  // the vertical field of view, so a camera fitted to a wide frame cuts the ends off a narrow one).
  function fit() {
    var r = S.renderer, cam = r.getActiveCamera(), b = r.computeVisiblePropBounds();
    var W = $("stage").clientWidth, H = $("stage").clientHeight;
    var c = [(b[0] + b[1]) / 2, (b[2] + b[3]) / 2, (b[4] + b[5]) / 2];
    var pos = cam.getPosition(), fp = cam.getFocalPoint();
    var d = norm([pos[0] - fp[0], pos[1] - fp[1], pos[2] - fp[2]]);
    var view = [-d[0], -d[1], -d[2]], right = norm(cross(view, [0, 1, 0])), up = cross(right, view);
    var tanV = Math.tan(cam.getViewAngle() * Math.PI / 360);
    var tanH = tanV * W / H;
    tanV *= Math.max(0.3, (H - 2 * LABEL_MARGIN_Y) / H);
    tanH *= Math.max(0.3, (W - 2 * LABEL_MARGIN_X) / W);
    var dist = 1;
    [b[0], b[1]].forEach(function (x) { [b[2], b[3]].forEach(function (y) { [b[4], b[5]].forEach(function (z) {
      var p = [x - c[0], y - c[1], z - c[2]], along = dot(p, view);
      dist = Math.max(dist, Math.abs(dot(p, right)) / tanH - along, Math.abs(dot(p, up)) / tanV - along);
    }); }); });
    cam.setFocalPoint(c[0], c[1], c[2]);
    cam.setPosition(c[0] + d[0] * dist, c[1] + d[1] * dist, c[2] + d[2] * dist);
    cam.setViewUp(0, 1, 0);
    r.resetCameraClippingRange();
  }
  function stageSize() { return $("stage").clientWidth + "x" + $("stage").clientHeight; }
  function dot(a, b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
  function cross(a, b) { return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]; }
  function norm(a) { var n = Math.sqrt(dot(a, a)) || 1; return [a[0] / n, a[1] / n, a[2] / n]; }

  // ------------------------------------------------------------------ labels

  function makeLabels() {
    var box = $("labels");
    S.labels = S.args.layers.map(function (lay, i) {
      var e = el("div", "lbl");
      e.append(el("b", null, lay.name), el("span", null, lay.text));
      e.dataset.layer = lay.id;
      e.title = "Click to select " + lay.name;
      box.appendChild(e);
      return { lay: lay, i: i, el: e };
    });
  }

  var placing = false;
  function schedulePlace() {
    if (placing) return;
    placing = true;
    requestAnimationFrame(function () { placing = false; placeLabels(); });
  }

  // Greedy: the highlighted layer's label first, then the layers with the most parameters; a
  // label that would overlap one already placed, or leave the frame, is hidden.
  function placeLabels() {
    if (!S.ready) return;
    var W = $("stage").clientWidth, H = $("stage").clientHeight, r = S.renderer, hl = S.highlight;
    var sizes = S.labels.map(function (L) {
      L.el.classList.toggle("hl", L.lay.id === hl);
      return [L.el.offsetWidth, L.el.offsetHeight];
    });
    var order = S.labels.slice().sort(function (a, b) {
      return ((b.lay.id === hl) - (a.lay.id === hl)) || (b.lay.parameters - a.lay.parameters) || (a.i - b.i);
    });
    var taken = [];
    order.forEach(function (L) {
      var a = L.lay.anchor, p = r.worldToNormalizedDisplay(a[0], a[1], a[2], W / H);
      var w = sizes[L.i][0], h = sizes[L.i][1], x = p[0] * W, y = (1 - p[1]) * H;
      var left = Math.min(Math.max(1, x - w / 2), W - w - 1), top = L.lay.above ? y - h : y;
      var rect = [left, top, left + w, top + h];
      var ok = top >= 0 && top + h <= H && !taken.some(function (t) {
        return rect[0] < t[2] + 3 && t[0] < rect[2] + 3 && rect[1] < t[3] + 1 && t[1] < rect[3] + 1;
      });
      L.el.style.visibility = ok ? "visible" : "hidden";
      if (ok) {
        taken.push(rect);
        L.el.style.transform = "translate(" + left.toFixed(1) + "px," + top.toFixed(1) + "px)";
      }
    });
    S.labelsShown = taken.length;
  }

  // ------------------------------------------------------------------ the layer table

  function buildTable(table) {
    var box = $("side");
    if (!table || box.dataset.built) return;
    box.dataset.built = "1";
    box.hidden = false;
    $("tabletitle").textContent = table.title;
    var head = el("tr");
    table.columns.forEach(function (c) {
      var th = el("th", c.help ? "help" : null, c.name);
      th.scope = "col";
      if (c.help) th.title = c.help;
      head.appendChild(th);
    });
    var t = $("layers"), body = el("tbody");
    t.appendChild(el("thead")).appendChild(head);
    table.rows.forEach(function (row) {
      var tr = el("tr");
      tr.dataset.layer = row.id;
      tr.tabIndex = 0;
      tr.title = "Click to select " + row.cells[0];
      row.cells.forEach(function (v, i) {
        var cell = tr.appendChild(el(i ? "td" : "th", null, v));
        if (!i) cell.scope = "row";
      });
      tr.addEventListener("click", function () { selectLayer(row.id); });
      tr.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); selectLayer(row.id); }
      });
      body.appendChild(tr);
    });
    t.appendChild(body);
    markRow();
  }

  // The selected layer's row is marked and scrolled into the table's view (the table's own
  // scroll only: the page around the frame does not move).
  function markRow() {
    var box = $("tablebox"), rows = $("layers").tBodies[0];
    if (!rows) return;
    Array.prototype.forEach.call(rows.rows, function (tr) {
      var on = tr.dataset.layer === S.highlight;
      tr.classList.toggle("sel", on);
      tr.setAttribute("aria-selected", String(on));
      if (on) {
        var top = tr.offsetTop - $("layers").tHead.offsetHeight, bottom = tr.offsetTop + tr.offsetHeight;
        if (top < box.scrollTop) box.scrollTop = top;
        else if (bottom > box.scrollTop + box.clientHeight) box.scrollTop = bottom - box.clientHeight;
      }
    });
  }

  // ------------------------------------------------------------------ the app's messages

  function onRender(args) {
    if (S.sceneKey && S.sceneKey !== args.scene_key) { location.reload(); return; } // another trial
    S.args = args;
    buildBar(args);
    buildTable(args.table);
    // a phone gets a squarer stage: the full height would leave the network a thin band in it
    var width = $("stage").clientWidth || document.body.clientWidth || args.height;
    var height = Math.min(args.height, Math.max(280, Math.round(width * 0.9)));
    $("stage").style.height = height + "px";
    document.documentElement.style.setProperty("--stage-height", height + "px");
    if (!S.sceneKey) {
      S.sceneKey = args.scene_key;
      $("view").style.visibility = "hidden"; // no flash of every outline while the scene loads
      load(args);
    }
    var want = args.color_by;
    if (S.pending) {
      if (want === S.pending) S.pending = null;
      else want = S.pending;
    }
    var hl = args.highlight || null;
    if (S.pendingLayer !== undefined) {
      if (hl === S.pendingLayer) S.pendingLayer = undefined; // the app has caught up with the pick
      else hl = S.pendingLayer;
    }
    S.highlight = hl;
    markRow();
    applyColour(want);
    setHeight();
  }

  window.addEventListener("message", function (ev) {
    var d = ev.data;
    if (d && d.type === "streamlit:render") onRender(d.args);
  });
  loadViewer();
  send("streamlit:componentReady", { apiVersion: 1 });
})();
