// Zones and masks on the camera image (camera page): an SVG overlay shows them; admins draw
// new ones with the mouse (click to add points, "Close shape" to finish) and save them
// (PUT /api/cameras/<id>/zones). The scheduler applies them within a second.
'use strict';

(function () {
  const V = window.Vigil;
  const { el, str, arr, obj, api, enc } = V;
  const SVG = 'http://www.w3.org/2000/svg';
  const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

  function svg(tag, attrs) {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
    return n;
  }
  const ptsAttr = (pts) => pts.map((p) => p[0].toFixed(4) + ',' + p[1].toFixed(4)).join(' ');
  const round = (v) => Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;

  // frame: the element the image fills (position: relative). Returns {panel, reload}.
  V.zoneEditor = function zoneEditor(frame, cameraId, ctx) {
    const path = '/api/cameras/' + enc(cameraId) + '/zones';
    const st = { zones: {}, masks: [], drawing: null, kind: 'zone', dirty: false };

    const overlay = svg('svg', { class: 'zone-overlay', viewBox: '0 0 1 1', preserveAspectRatio: 'none' });
    overlay.id = 'zone-overlay';
    frame.append(overlay);

    const panel = V.panel('Zones & masks', 'zones-panel');
    panel.node.id = 'zones-panel';
    const list = el('div', 'zone-list');
    const msg = el('p', 'form-msg');
    msg.hidden = true;
    panel.body.append(list);

    const tools = el('div', 'zone-tools');
    const nameIn = V.input('zone_name', 'text', '', { maxlength: '64', placeholder: 'zone name, e.g. driveway', spellcheck: 'false' });
    nameIn.id = 'zone-name';
    const kindSel = V.select('zone_kind', [['zone', 'zone (rules can name it)'], ['mask', 'mask (motion ignored)']], 'zone');
    kindSel.id = 'zone-kind';
    const drawBtn = V.button('Draw', 'small', () => startDrawing());
    drawBtn.id = 'zone-draw';
    const closeBtn = V.button('Close shape', 'small', () => finishShape());
    closeBtn.id = 'zone-close';
    const undoBtn = V.button('Undo point', 'small ghost', () => { if (st.drawing) { st.drawing.pop(); render(); } });
    const cancelBtn = V.button('Cancel', 'small ghost', () => { st.drawing = null; render(); });
    const saveBtn = V.button('Save zones', 'small', () => V.fire(save));
    saveBtn.id = 'zone-save';
    tools.append(V.field('Name', nameIn), V.field('Kind', kindSel), drawBtn, closeBtn, undoBtn, cancelBtn, saveBtn);
    const hint = el('p', 'muted small-text', 'Draw, then click on the image to place corners; “Close shape” finishes the polygon. Save applies it to the running scheduler.');
    if (V.isAdmin()) panel.body.append(tools, hint);
    panel.body.append(msg);

    kindSel.addEventListener('change', () => { nameIn.disabled = kindSel.value === 'mask'; });

    function startDrawing() {
      st.kind = kindSel.value;
      if (st.kind === 'zone' && !NAME_RE.test(nameIn.value.trim())) {
        V.setMsg(msg, 'Name the zone first (letters, digits, _ . -).');
        return;
      }
      V.setMsg(msg, '');
      st.drawing = [];
      frame.classList.add('drawing');
      frame.scrollIntoView({ block: 'nearest' });  // the picture to draw on, in view
      V.setMsg(msg, 'Click on the image to place the corners, then “Close shape”.', 'info');
      render();
    }

    function finishShape() {
      if (!st.drawing) return;
      if (st.drawing.length < 3) { V.setMsg(msg, 'A shape needs at least 3 corners.'); return; }
      if (st.kind === 'mask') st.masks.push(st.drawing);
      else st.zones[nameIn.value.trim()] = st.drawing;
      st.drawing = null;
      st.dirty = true;
      nameIn.value = '';
      V.setMsg(msg, 'Shape added. Save to apply it.', 'info');
      render();
    }

    overlay.addEventListener('click', (e) => {
      if (!st.drawing) return;
      const r = overlay.getBoundingClientRect();
      if (!r.width || !r.height) return;
      st.drawing.push([round((e.clientX - r.left) / r.width), round((e.clientY - r.top) / r.height)]);
      render();
    });

    async function save() {
      saveBtn.disabled = true;
      V.setMsg(msg, 'Saving…', 'info');
      try {
        const res = obj(await api.put(path, { zones: st.zones, masks: st.masks }));
        if (!ctx.alive) return;
        take(res);
        st.dirty = false;
        V.setMsg(msg, 'Saved: the scheduler uses these zones within a second.', 'ok');
      } catch (err) {
        if (ctx.alive && !(err instanceof V.Unauthorized)) V.setMsg(msg, V.errText(err, 'Save'));
      } finally {
        saveBtn.disabled = false;
      }
    }

    function take(res) {
      st.zones = {};
      for (const [k, v] of Object.entries(obj(res.zones))) if (arr(v).length >= 3) st.zones[k] = arr(v);
      st.masks = arr(res.masks).filter((m) => arr(m).length >= 3);
      panel.note.textContent = res.source === 'config' ? 'from the config file' : res.by ? 'drawn by ' + str(res.by) : '';
      render();
    }

    function render() {
      overlay.replaceChildren();
      frame.classList.toggle('drawing', !!st.drawing);
      for (const m of st.masks) overlay.append(svg('polygon', { points: ptsAttr(m), class: 'mask-shape' }));
      for (const [name, poly] of Object.entries(st.zones)) {
        const g = svg('g', { class: 'zone-shape' });
        g.dataset.zone = name;
        g.append(svg('polygon', { points: ptsAttr(poly) }));
        overlay.append(g);
      }
      if (st.drawing && st.drawing.length) {
        overlay.append(svg('polyline', { points: ptsAttr(st.drawing), class: 'draft-shape' }));
        for (const p of st.drawing) overlay.append(svg('circle', { cx: p[0], cy: p[1], r: 0.008, class: 'draft-point' }));
      }
      // The list (names as text, never markup).
      list.replaceChildren();
      const names = Object.keys(st.zones);
      if (!names.length && !st.masks.length) list.append(el('p', 'muted', 'No zones or masks.'));
      for (const name of names) list.append(row('zone', name, () => { delete st.zones[name]; }));
      st.masks.forEach((m, i) => list.append(row('mask', 'mask ' + (i + 1), () => { st.masks.splice(i, 1); })));
    }

    function row(kind, label, onRemove) {
      const r = el('div', 'zone-row');
      r.dataset.kind = kind;
      r.append(el('span', 'chip ' + (kind === 'mask' ? 'mask-chip' : 'zone-chip'), label));
      if (V.isAdmin()) {
        r.append(V.button('Remove', 'small ghost', () => { onRemove(); st.dirty = true; render(); V.setMsg(msg, 'Removed. Save to apply.', 'info'); }));
      }
      return r;
    }

    async function reload() {
      try {
        const res = obj(await api.get(path));
        if (ctx.alive && !st.dirty && !st.drawing) take(res);
      } catch (e) {
        if (ctx.alive && !(e instanceof V.Unauthorized)) V.setMsg(msg, V.errText(e, 'Loading zones'));
      }
    }
    render();
    return { panel: panel.node, reload };
  };
})();
