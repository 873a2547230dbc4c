// Camera page (#/camera/<id>): big live snapshot, status, configuration, recent events;
// admins edit (PATCH) or delete the camera. Also the camera form the live page's
// "Add camera" dialog uses (V.buildCameraForm).
'use strict';

(function () {
  const V = window.Vigil;
  const { el, str, num, arr, obj, api, enc } = V;

  const SNAPSHOT_MS = 1000;
  const SNAPSHOT_RETRY_MS = 5000;
  const STATUS_MS = 2000;
  const CONFIG_MS = 10000;
  const MAX_EVENTS = 60;
  const STATES = ['streaming', 'connecting', 'retrying', 'error', 'ended', 'stopped', 'unknown'];
  const STATUS_ORDER = ['state', 'decoded', 'sampled', 'written', 'dropped', 'last_error', 'last_frame_age_s'];
  const CONFIG_ORDER = ['id', 'name', 'source', 'sample_fps', 'pace', 'loop', 'enabled', 'context', 'duration'];
  const ID_RE = '[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}';

  // ---- the camera form (add and edit) -------------------------------------------------

  // cam: the camera as the API returns it (edit), or null (add).
  V.buildCameraForm = function buildCameraForm(cam, { onDone, onCancel } = {}) {
    const editing = !!cam;
    const c = obj(cam);
    const form = el('form', 'form camera-form');
    form.id = editing ? 'camera-edit-form' : 'camera-form';
    form.autocomplete = 'off';

    const grid = el('div', 'form-grid');
    let idIn = null;
    if (!editing) {
      idIn = V.input('id', 'text', '', { required: '', pattern: ID_RE, maxlength: '64', spellcheck: 'false',
        placeholder: 'e.g. gate-2' });
      grid.append(V.field('Id', idIn, 'letters, digits, _ . - (used in URLs)'));
    }
    const nameIn = V.input('name', 'text', c.name, { maxlength: '200', placeholder: 'Display name' });
    grid.append(V.field('Name', nameIn));
    const urlIn = V.input('url', 'text', '', { maxlength: '4096', spellcheck: 'false',
      placeholder: editing ? 'unchanged' : 'rtsp://user:pass@host/path, a file, testsrc://' });
    if (!editing) urlIn.required = true;
    // The current source is shown only as the API returns it (credentials redacted), never prefilled:
    // saving must not overwrite the real URL with the redacted one.
    grid.append(V.field('Source URL', urlIn, editing ? 'leave empty to keep: ' + str(c.source || c.url, '—') : null));
    const fpsIn = V.input('sample_fps', 'number', num(c.sample_fps) !== null ? c.sample_fps : 5,
      { min: '0.1', max: '60', step: 'any', required: '' });
    grid.append(V.field('Sample fps', fpsIn, 'frames per second scored (max 60)'));
    const paceIn = V.select('pace', [['realtime', 'realtime'], ['fast', 'fast (replays)']],
      c.pace === 'fast' ? 'fast' : 'realtime');
    grid.append(V.field('Pace', paceIn, 'files: like a live camera, or as fast as it decodes'));
    const ctxIn = el('textarea');
    ctxIn.name = 'context';
    ctxIn.rows = 2;
    ctxIn.maxLength = 2000;
    ctxIn.value = str(c.context);
    ctxIn.placeholder = 'What is normal for this scene (optional, given to the model)';
    const ctxField = V.field('Context', ctxIn);
    ctxField.classList.add('wide');
    grid.append(ctxField);
    const loop = V.checkbox('loop', 'Loop files', c.loop === true);
    const enabled = V.checkbox('enabled', 'Enabled', c.enabled !== false);
    const checks = el('div', 'checks');
    checks.append(loop.wrap, enabled.wrap);
    grid.append(checks);
    form.append(grid);

    const msg = el('p', 'form-msg');
    msg.hidden = true;
    msg.setAttribute('role', 'status');
    const submit = V.button(editing ? 'Save changes' : 'Add camera', null, null, 'submit');
    const actions = el('div', 'form-actions');
    actions.append(submit);
    if (onCancel) actions.append(V.button('Cancel', 'ghost', () => onCancel()));
    actions.append(msg);
    form.append(actions);

    form.addEventListener('submit', (e) => {
      e.preventDefault();
      V.fire(async () => {
        const fps = Number(fpsIn.value);
        if (!Number.isFinite(fps) || fps <= 0 || fps > 60) { V.setMsg(msg, 'Sample fps must be between 0 and 60.'); return; }
        const body = { name: nameIn.value.trim(), sample_fps: fps, pace: paceIn.value,
          loop: loop.input.checked, enabled: enabled.input.checked };
        const url = urlIn.value.trim();
        if (url) body.url = url;
        if (editing) body.context = ctxIn.value;
        else {
          body.id = idIn.value.trim();
          if (!body.id) { V.setMsg(msg, 'Enter an id.'); return; }
          if (!url) { V.setMsg(msg, 'Enter the source URL.'); return; }
          if (ctxIn.value.trim()) body.context = ctxIn.value;
        }
        submit.disabled = true;
        V.setMsg(msg, editing ? 'Saving…' : 'Adding…', 'info');
        try {
          const res = editing ? await api.patch('/api/cameras/' + enc(str(c.id)), body) : await api.post('/api/cameras', body);
          urlIn.value = '';
          V.setMsg(msg, editing ? 'Saved.' : 'Added.', 'ok');
          if (onDone) onDone(res);
        } catch (err) {
          if (!(err instanceof V.Unauthorized)) V.setMsg(msg, V.errText(err, editing ? 'Save' : 'Add'));
        } finally {
          submit.disabled = false;
        }
      });
    });
    return form;
  };

  // ---- the page ------------------------------------------------------------------------

  function mount(root, id, ctx) {
    const camPath = '/api/cameras/' + enc(id);
    const st = { cam: null, status: null, loading: false, loadStart: 0, retryAt: 0, hasFrame: false,
      mayHaveFrame: true, seen: new Set(), editOpen: false };

    // Header
    const head = el('div', 'page-head');
    const back = V.link('#/', '← Live', 'back');
    const title = el('h1', null, V.cameraName(id));
    const badge = el('span', 'badge state state-unknown', 'unknown');
    const idCode = el('code', 'muted', id);
    idCode.hidden = title.textContent === id;
    head.append(back, title, badge, idCode, el('span', 'spacer'));
    const adminBox = el('div', 'head-actions');
    head.append(adminBox);
    root.append(head);
    const topMsg = el('div', 'page-msgs');
    root.append(topMsg);

    // Live frame + side panels
    const layout = el('div', 'camera-layout');
    const live = el('div', 'panel cam-live');
    const frame = el('div', 'frame big');
    const img = el('img');
    img.alt = 'Live view of ' + id;
    img.decoding = 'async';
    const noFrame = el('span', 'no-frame', 'No frame yet');
    const liveBadge = el('span', 'badge live-badge', '● LIVE');
    liveBadge.hidden = true;
    frame.id = 'camera-live';
    frame.append(img, noFrame, liveBadge);
    const frameMeta = el('div', 'frame-meta muted');
    live.append(frame, frameMeta);

    const side = el('div', 'cam-side');
    const statusPanel = V.panel('Status');
    const configPanel = V.panel('Configuration');
    side.append(statusPanel.node, configPanel.node);
    layout.append(live, side);
    root.append(layout);

    const timeline = V.cameraTimeline(id, ctx);
    root.append(timeline.node);
    const zoneEd = V.zoneEditor(frame, id, ctx);
    root.append(zoneEd.panel);

    const editPanel = V.panel('Edit camera');
    editPanel.node.classList.add('edit-panel');
    editPanel.node.hidden = true;
    root.append(editPanel.node);

    const eventsPanel = V.panel('Recent events');
    const events = el('div', 'event-list');
    events.id = 'camera-events';
    eventsPanel.body.append(events);
    root.append(eventsPanel.node);

    img.addEventListener('load', () => {
      st.loading = false; st.hasFrame = true; frame.classList.add('has-frame');
      // The box takes the picture's shape, so the zone overlay lines up with the image.
      if (img.naturalWidth && img.naturalHeight) frame.style.aspectRatio = img.naturalWidth + ' / ' + img.naturalHeight;
      frameMeta.textContent = st.live ? 'Live at the camera\'s sample rate' : 'Updated ' + new Date().toLocaleTimeString();
    });
    img.addEventListener('error', () => {
      if (st.live) { st.live = false; st.liveFailed = true; liveBadge.hidden = true; }
      st.loading = false;
      st.retryAt = Date.now() + SNAPSHOT_RETRY_MS;
      if (!st.hasFrame) frame.classList.remove('has-frame');
      frameMeta.textContent = st.hasFrame ? 'Frame unavailable, retrying' : '';
    });

    // The live view is the camera's MJPEG stream (every sampled frame, as ingest writes it).
    // It is opened only while the page is on screen and the tab visible: nobody watching
    // costs the server nothing. It falls back to the 1 s snapshot if the stream fails.
    const liveUrl = camPath + '/live.mjpeg';
    st.live = false;
    function startLive() {
      if (!ctx.alive || document.hidden || st.live || !st.mayHaveFrame) return;
      st.live = true;
      frame.dataset.mode = 'live';
      liveBadge.hidden = false;
      img.src = liveUrl + '?t=' + Date.now();
    }
    function stopLive() {
      if (!st.live) return;
      st.live = false;
      liveBadge.hidden = true;
      img.removeAttribute('src');  // closes the stream
    }
    const onVisibility = () => { if (document.hidden) stopLive(); else startLive(); };
    document.addEventListener('visibilitychange', onVisibility);
    ctx.onDispose(() => { document.removeEventListener('visibilitychange', onVisibility); stopLive(); });

    function refreshSnapshot() {
      if (!st.cam) return;
      if (!st.live && !st.liveFailed) { startLive(); return; }
      if (st.live) return;
      const url = V.safeUrl(st.cam.snapshot_url) || camPath + '/snapshot.jpg';
      const now = Date.now();
      if (!st.mayHaveFrame || now < st.retryAt) return;
      if (st.loading && now - st.loadStart < 10000) return;
      st.loading = true;
      st.loadStart = now;
      frame.dataset.mode = 'snapshot';
      img.src = url + (url.includes('?') ? '&' : '?') + 't=' + now;
    }

    function renderStatus(s) {
      st.status = s;
      const rawState = str(s.state, 'unknown');
      const disabled = st.cam && st.cam.enabled === false;
      badge.className = 'badge state state-' + V.pick(rawState, STATES, 'unknown');
      badge.textContent = disabled ? 'disabled' : rawState;
      st.mayHaveFrame = V.mayHaveFrame(s, st.hasFrame);
      statusPanel.body.replaceChildren(V.kvTable(s, {
        order: STATUS_ORDER,
        labels: { last_frame_age_s: 'last frame' },
        fmt: {
          state: (v) => el('span', 'badge state state-' + V.pick(str(v), STATES, 'unknown'), str(v, 'unknown')),
          last_frame_age_s: (v) => (num(v) !== null ? V.fmtAge(v) : null),
          last_error: (v) => (v ? el('span', 'error-text', str(v)) : '—'),
        },
      }));
      statusPanel.body.querySelector('table').id = 'camera-status';
    }

    function renderConfig(cam) {
      st.cam = cam;
      title.textContent = str(cam.name) || id;
      idCode.hidden = title.textContent === id;
      V.cameraNames.set(id, str(cam.name) || id);
      const shown = Object.assign({}, cam);
      // "url" and "source" are the same redacted text: show it once. Status has its own panel.
      if (!('source' in shown) && 'url' in shown) shown.source = shown.url;
      configPanel.body.replaceChildren(V.kvTable(shown, {
        order: CONFIG_ORDER, skip: ['url', 'status', 'snapshot_url', 'v', 'type'],
        fmt: { context: (v) => (v ? el('span', 'pre-line', str(v)) : '—'), duration: (v) => (v === null ? 'until the source ends' : null) },
      }));
    }

    function renderAdmin() {
      adminBox.replaceChildren();
      if (!V.isAdmin() || !st.cam) return;
      const edit = V.button('Edit', 'ghost', () => toggleEdit());
      edit.id = 'camera-edit-button';
      const del = V.button('Delete', 'danger', () => V.fire(remove));
      del.id = 'camera-delete-button';
      adminBox.append(edit, del);
    }

    function toggleEdit(open = !st.editOpen) {
      st.editOpen = open;
      editPanel.node.hidden = !open;
      editPanel.body.replaceChildren();
      if (!open || !st.cam) return;
      editPanel.body.append(V.buildCameraForm(st.cam, {
        onDone: (res) => {
          if (V.isObj(res)) { renderConfig(res); if (V.isObj(res.status)) renderStatus(res.status); }
          V.fire(V.refreshCameras || (() => null));
          toggleEdit(false);
          flash('Camera saved.', 'ok');
        },
        onCancel: () => toggleEdit(false),
      }));
      editPanel.node.scrollIntoView({ block: 'nearest' });
    }

    async function remove() {
      if (!window.confirm('Delete camera "' + id + '"? Ingest stops; past events are kept.')) return;
      try {
        await api.del(camPath);
        V.fire(V.refreshCameras || (() => null));
        location.hash = '#/';
      } catch (e) {
        if (ctx.alive && !(e instanceof V.Unauthorized)) flash(V.errText(e, 'Delete'), 'error');
      }
    }

    function flash(text, kind) {
      topMsg.replaceChildren(V.notice(text, kind));
      if (kind === 'ok') ctx.after(4000, () => topMsg.replaceChildren());
    }

    async function loadConfig() {
      try {
        const cam = await api.get(camPath);
        if (!ctx.alive) return;
        const first = !st.cam;
        renderConfig(obj(cam));
        if (first) {
          renderAdmin();
          if (V.isObj(cam.status)) renderStatus(cam.status);
          refreshSnapshot();
        }
      } catch (e) {
        if (!ctx.alive || e instanceof V.Unauthorized) return;
        if (e instanceof V.ApiError && e.status === 404) {
          root.replaceChildren(head, V.notice('Unknown camera "' + id + '" (it may have been deleted).', 'warn'));
          badge.hidden = true;
          adminBox.replaceChildren();
          ctx.dispose();
          return;
        }
        flash(V.errText(e, 'Loading the camera'), 'error');
      }
    }

    async function loadStatus() {
      if (!st.cam) return;
      try {
        const s = await api.get(camPath + '/status');
        if (ctx.alive) renderStatus(obj(s));
      } catch (e) {
        if (ctx.alive && !(e instanceof V.Unauthorized)) {
          statusPanel.body.replaceChildren(V.notice(V.errText(e, 'Status'), 'error'));
        }
      }
    }

    function addEvent(ev, live) {
      if (!V.isObj(ev) || ev.id === undefined || ev.id === null) return;
      const key = String(ev.id);
      if (st.seen.has(key)) return;
      st.seen.add(key);
      const row = V.renderEvent(ev);
      if (live) { row.classList.add('fresh'); events.prepend(row); } else events.append(row);
      while (events.childElementCount > MAX_EVENTS) events.lastElementChild.remove();
      eventsPanel.note.textContent = String(events.childElementCount);
    }

    async function loadEvents() {
      try {
        const res = await api.get('/api/events' + V.query({ camera: id, limit: 30 }));
        if (!ctx.alive) return;
        arr(obj(res).items).forEach((ev) => addEvent(ev, false));
        if (!events.childElementCount) events.append(el('p', 'muted empty', 'No events for this camera yet.'));
      } catch (e) {
        if (ctx.alive && !(e instanceof V.Unauthorized)) events.append(V.notice(V.errText(e, 'Loading events'), 'error'));
      }
    }

    ctx.onDispose(V.live.on('event', (ev) => {
      if (!V.isObj(ev) || str(ev.camera) !== id) return;
      const empty = events.querySelector('.empty');
      if (empty) empty.remove();
      addEvent(ev, true);
    }));

    V.fire(async () => {
      await loadConfig();
      if (!ctx.alive) return;
      V.fire(zoneEd.reload);
      V.fire(timeline.load);
      ctx.every(SNAPSHOT_MS, refreshSnapshot, false);
      ctx.every(STATUS_MS, loadStatus);
      ctx.every(CONFIG_MS, loadConfig, false);
      await loadEvents();
    });
  }

  V.pages.camera = { view: 'camera-view', nav: 'nav-live', title: 'Camera', mount };
})();
