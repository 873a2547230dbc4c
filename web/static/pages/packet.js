// Packet inspector (#/packet/<id>): every frame of a packet large, the motion boxes over the
// frame with the most motion, temporal ids, and the event the model made of it (summary,
// labels, rule verdicts, backend/model/latency, the raw answer).
'use strict';

(function () {
  const V = window.Vigil;
  const { el, str, num, arr, obj, api, enc } = V;
  const REPOLL_MS = 3000;     // while the packet has no event yet
  const REPOLL_MAX = 40;

  const clamp01 = (v) => Math.min(1, Math.max(0, v));

  function mount(root, id, ctx) {
    const st = { polls: 0, eventShown: null };
    const head = el('div', 'page-head');
    // Back to the view the user came from (camera page, live home, replay results).
    const back = V.link(V.prevHash || '#/', '← Back', 'back');
    const title = el('h1', null, 'Packet ');
    title.append(el('code', null, id));
    head.append(back, title);
    root.append(head);
    const body = el('div', 'packet-body');
    body.append(el('p', 'muted', 'Loading…'));
    root.append(body);

    async function load() {
      let p;
      try {
        p = obj(await api.get('/api/packets/' + enc(id)));
      } catch (e) {
        if (!ctx.alive || e instanceof V.Unauthorized) return;
        body.replaceChildren(V.notice(e instanceof V.ApiError && e.status === 404
          ? 'Unknown packet "' + id + '" (or trimmed by retention).' : V.errText(e, 'Loading the packet'),
        e instanceof V.ApiError && e.status === 404 ? 'warn' : 'error'));
        return;
      }
      if (!ctx.alive) return;
      // Re-polled until the event exists; the frames are only re-rendered when that changes.
      const key = str(p.event_id, '-');
      if (st.eventShown !== key) { st.eventShown = key; render(p); }
      if (!p.event_id && st.polls++ < REPOLL_MAX) ctx.after(REPOLL_MS, load);
    }

    function render(p) {
      body.replaceChildren();
      // Header facts
      head.querySelectorAll('.head-extra').forEach((n) => n.remove());
      if (p.camera !== undefined) {
        const cam = V.link(V.cameraHref(p.camera), V.cameraName(p.camera), 'head-extra event-camera');
        head.append(cam);
      }
      const reason = str(p.reason, 'unknown');
      head.append(el('span', 'head-extra badge reason reason-' + V.pick(reason, ['onset', 'motion', 'heartbeat', 'flush'], 'other'), reason));
      if (p.status && p.status !== 'ok') head.append(el('span', 'head-extra badge bad', str(p.status)));
      const created = V.timeEl(p.created);
      created.classList.add('head-extra');
      head.append(created);

      const w = num(p.width), h = num(p.height);
      const frames = arr(p.frames);
      const motion = obj(p.motion);

      // Facts panel
      const facts = V.panel('Packet', 'packet-facts');
      const tids = el('div', 'chips temporal-ids');
      arr(p.temporal_ids).forEach((g, i) => {
        const chip = el('span', 'chip', '[' + arr(g).join(', ') + ']');
        chip.title = 'frame ' + i;
        tids.append(chip);
      });
      const zones = el('div', 'chips');
      arr(motion.zones).forEach((z) => zones.append(el('span', 'chip', str(z))));
      facts.body.append(V.kvTable({
        id: p.id, camera: p.camera, reason: p.reason, size: w !== null && h !== null ? w + ' × ' + h : null,
        frames: frames.length, created: p.created, motion_area: motion.area,
        motion_boxes: arr(motion.boxes).length, zones: arr(motion.zones).length ? zones : null,
        temporal_ids: tids, event_id: p.event_id, status: p.status,
      }, {
        labels: { temporal_ids: 'temporal ids', motion_area: 'motion area', motion_boxes: 'motion boxes' },
        fmt: {
          motion_area: (v) => V.pct(v),
          zones: (v) => v || '—',
          temporal_ids: (v) => v,
          event_id: (v) => (v ? el('code', null, str(v)) : 'none yet'),
          status: (v) => (v === undefined || v === null ? '—' : null),
        },
        skip: [...(p.status === undefined ? ['status'] : [])],
      }));

      // Frames
      const framesPanel = V.panel('Frames', 'packet-frames-panel');
      framesPanel.note.textContent = frames.length + (frames.length === 1 ? ' frame' : ' frames') +
        (arr(motion.boxes).length ? ' · boxes drawn on the frame with the most motion' : '');
      const grid = el('div', 'packet-frames');
      let maxIdx = -1, maxMotion = -Infinity;
      frames.forEach((f, i) => {
        const m = num(obj(f).motion);
        if (m !== null && m > maxMotion) { maxMotion = m; maxIdx = i; }
      });
      // Boxes are the packet's; drawn on the frame with the most motion (the first if none has any).
      const boxes = arr(motion.boxes);
      if (maxMotion <= 0) maxIdx = boxes.length && frames.length ? 0 : -1;
      frames.forEach((f, i) => grid.append(renderFrame(obj(f), i, i === maxIdx ? boxes : null, w, h)));
      if (!frames.length) grid.append(el('p', 'muted', 'This packet has no frames.'));
      framesPanel.body.append(grid);

      const top = el('div', 'packet-layout');
      const eventPanel = V.panel('Event', 'packet-event');
      eventPanel.node.id = 'packet-event';
      top.append(framesPanel.node, el('div', 'packet-side'));
      top.lastChild.append(facts.node, eventPanel.node);
      body.append(top);

      const clipPanel = V.panel('Clip', 'packet-clip');
      clipPanel.node.id = 'packet-clip';
      clipPanel.note.textContent = 'the packet with the seconds around it, as recorded';
      clipPanel.body.append(V.clipPlayer('/api/packets/' + enc(id) + '/clip.webm', 'vigil-' + id));
      body.append(clipPanel.node);

      const promptPanel = V.panel('Prompt', 'packet-prompt');
      const promptPre = el('pre', 'raw-answer');
      promptPre.id = 'prompt-text';
      promptPre.textContent = typeof p.prompt === 'string' && p.prompt ? p.prompt
        : '(no prompt: the cpu backend asks no model, or the analyzer has not answered yet)';
      promptPanel.body.append(promptPre);
      body.append(promptPanel.node);

      const rawPanel = V.panel('Raw model answer', 'packet-raw');
      const pre = el('pre', 'raw-answer');
      pre.id = 'raw-answer';
      pre.textContent = typeof p.raw_answer === 'string' ? (p.raw_answer || '(empty)') : '(no answer yet)';
      rawPanel.body.append(pre);
      body.append(rawPanel.node);

      if (p.event_id) V.fire(() => loadEvent(str(p.event_id), eventPanel, pre));
      else eventPanel.body.append(V.notice('No event for this packet yet: the analyzer has not answered (or skipped it). Checking again…', 'info'));
    }

    function renderFrame(f, i, boxes, w, h) {
      const fig = el('figure', 'packet-frame');
      fig.dataset.index = String(i);
      const box = el('div', 'frame-box');
      if (w && h) box.style.aspectRatio = w + ' / ' + h;
      const url = V.safeUrl(f.url);
      if (url) {
        const a = el('a');
        a.href = url; a.target = '_blank'; a.rel = 'noopener';
        a.title = 'Open full size';
        const img = el('img');
        img.decoding = 'async';
        img.alt = 'frame ' + i;
        if (w && h) { img.width = w; img.height = h; }
        img.addEventListener('error', () => fig.classList.add('missing'), { once: true });
        img.src = url;
        a.append(img);
        box.append(a);
      }
      if (boxes) {
        fig.classList.add('max-motion');
        for (const b of boxes) {
          const [x, y, bw, bh] = arr(b).map(Number);
          if (![x, y, bw, bh].every(Number.isFinite)) continue;
          const r = el('div', 'motion-box');
          const left = clamp01(x), topv = clamp01(y);
          r.style.left = (left * 100).toFixed(3) + '%';
          r.style.top = (topv * 100).toFixed(3) + '%';
          r.style.width = (clamp01(left + bw) - left) * 100 + '%';
          r.style.height = (clamp01(topv + bh) - topv) * 100 + '%';
          box.append(r);
        }
      }
      fig.append(box);
      const cap = el('figcaption');
      cap.append(el('span', 'frame-idx', '#' + i));
      const ts = num(f.ts);
      cap.append(el('span', 'ts', ts !== null ? 'ts ' + ts.toFixed(2) + ' s' : 'ts —'));
      const tid = num(f.temporal_id);
      cap.append(el('span', 'chip', 'temporal id ' + (tid !== null ? tid : '—')));
      const m = num(f.motion);
      if (m !== null) cap.append(el('span', 'meta', 'motion ' + V.pct(m)));
      if (boxes) cap.append(el('span', 'badge max-badge', 'max motion'));
      fig.append(cap);
      return fig;
    }

    // The detector's boxes (cpu backend) on the frames they were found in, labelled.
    function drawObjects(objects) {
      body.querySelectorAll('.object-box').forEach((n) => n.remove());
      for (const o of objects) {
        const fb = body.querySelector('.packet-frame[data-index="' + String(num(o.frame) || 0) + '"] .frame-box');
        const [x, y, bw, bh] = arr(o.box).map(Number);
        if (!fb || ![x, y, bw, bh].every(Number.isFinite)) continue;
        const r = el('div', 'object-box');
        const left = clamp01(x), topv = clamp01(y);
        r.style.left = (left * 100).toFixed(3) + '%';
        r.style.top = (topv * 100).toFixed(3) + '%';
        r.style.width = (clamp01(left + bw) - left) * 100 + '%';
        r.style.height = (clamp01(topv + bh) - topv) * 100 + '%';
        const score = num(o.score);
        r.append(el('span', 'object-tag', str(o.label) + (score !== null ? ' ' + Math.round(score * 100) + '%' : '')));
        fb.append(r);
      }
    }

    async function loadEvent(eventId, eventPanel, pre) {
      let data;
      try {
        data = obj(await api.get('/api/events/' + enc(eventId)));
      } catch (e) {
        if (ctx.alive && !(e instanceof V.Unauthorized)) eventPanel.body.replaceChildren(V.notice(V.errText(e, 'Loading the event'), 'error'));
        return;
      }
      if (!ctx.alive) return;
      const ev = obj(data.event);
      const b = eventPanel.body;
      b.replaceChildren();
      eventPanel.note.textContent = eventId;
      const summary = str(ev.summary).trim();
      b.append(el('p', 'summary event-summary', summary || '(no summary)'));

      const chips = el('div', 'chips labels');
      const counts = obj(ev.counts);
      for (const label of arr(ev.labels)) {
        const n = num(counts[label]);
        chips.append(el('span', 'chip', str(label) + (n !== null && n > 1 ? ' ×' + n : '')));
      }
      // Counts for labels not in the list (shapes may differ).
      for (const [k, n] of Object.entries(counts)) {
        if (!arr(ev.labels).includes(k)) chips.append(el('span', 'chip', k + ' ×' + V.plain(n)));
      }
      if (!chips.childElementCount) chips.append(el('span', 'muted', 'no labels'));
      b.append(el('h3', null, 'Labels'), chips);
      drawObjects(arr(ev.objects).filter(V.isObj));

      b.append(el('h3', null, 'Rules'));
      const rules = arr(ev.rules).filter(V.isObj);
      if (rules.length) {
        b.append(V.dataTable(rules, ['rule', 'match', 'confidence', 'evidence'], (k, v) => {
          if (k === 'match') return el('span', 'badge ' + (v ? 'match' : 'nomatch'), v ? 'match' : 'no match');
          if (k === 'confidence') return el('span', null, V.pct(v));
          return null;
        }));
      } else b.append(el('p', 'muted', 'No rule verdicts.'));

      b.append(el('h3', null, 'Model'));
      b.append(V.kvTable(ev, {
        order: ['backend', 'model', 'latency_ms', 'visual_tokens', 'status', 'start', 'end', 'reason'],
        labels: { latency_ms: 'latency', visual_tokens: 'visual tokens' },
        fmt: { latency_ms: (v) => (num(v) !== null ? Math.round(v) + ' ms' : null) },
        skip: ['id', 'camera', 'packet_id', 'summary', 'labels', 'counts', 'rules', 'frames', 'raw', 'motion', 'objects', 'v', 'type'],
      }));
      if (typeof ev.raw === 'string' && (pre.textContent === '(no answer yet)' || !pre.textContent)) pre.textContent = ev.raw || '(empty)';
    }

    V.fire(load);
  }

  V.pages.packet = { view: 'packet-view', nav: null, title: 'Packet', mount };
})();
