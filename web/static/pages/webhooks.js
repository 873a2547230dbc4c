// Webhooks page (#/webhooks): endpoints (create / delete for admins), each endpoint's
// deliveries, and the dead letters with a "Replay" button each. Shapes are rendered
// generically so fields the backend adds later still show.
'use strict';

(function () {
  const V = window.Vigil;
  const { el, str, num, arr, obj, api, enc } = V;
  const KNOWN_EVENTS = ['alert.open', 'alert.update', 'alert.resolved'];
  const DELIVERY_ORDER = ['delivery_id', 'webhook_id', 'endpoint', 'event', 'alert_id', 'status', 'attempts',
    'last_status', 'last_error', 'next_attempt_at', 'created', 'delivered_at'];
  const STATUS = ['pending', 'delivered', 'retrying', 'dead'];
  const REFRESH_MS = 5000;

  const listOf = (res) => (Array.isArray(res) ? res : arr(obj(res).items)).filter(V.isObj);

  function mount(root, _param, ctx) {
    const st = { hooks: [], open: new Map(), available: null };

    const head = el('div', 'page-head');
    const count = el('span', 'note');
    head.append(el('h1', null, 'Webhooks'), count, el('span', 'spacer'),
      V.button('Refresh', 'small ghost', () => V.fire(refreshAll)));
    root.append(head);
    const msg = el('div', 'page-msgs');
    root.append(msg);

    const createPanel = V.panel('Add endpoint', 'webhook-create');
    createPanel.node.hidden = true;
    root.append(createPanel.node);

    const listPanel = V.panel('Endpoints');
    const list = el('div', 'webhook-list');
    list.id = 'webhooks-list';
    listPanel.body.append(list);
    root.append(listPanel.node);

    const deadPanel = V.panel('Dead letters', 'dead-letters-panel');
    const dead = el('div', 'dead-letters');
    dead.id = 'dead-letters';
    deadPanel.body.append(dead);
    root.append(deadPanel.node);

    function flash(text, kind) {
      msg.replaceChildren(V.notice(text, kind));
      if (kind === 'ok') ctx.after(4000, () => msg.replaceChildren());
    }

    const statusBadge = (v) => el('span', 'badge dstatus dstatus-' + V.pick(str(v), STATUS, 'other'), str(v, '—'));

    // ---- endpoints -----------------------------------------------------------------

    async function loadHooks() {
      try {
        const res = await api.get('/api/webhooks');
        if (!ctx.alive) return;
        st.available = true;
        st.hooks = listOf(res);
        renderHooks();
      } catch (e) {
        if (!ctx.alive || e instanceof V.Unauthorized) return;
        st.available = !(e instanceof V.ApiError && e.missing);
        list.replaceChildren(V.notice(st.available ? V.errText(e, 'Loading webhooks')
          : 'Webhooks are not available on this server.', st.available ? 'error' : 'warn'));
        count.textContent = '';
      }
      renderCreate();
    }

    function renderHooks() {
      list.replaceChildren();
      count.textContent = st.hooks.length ? String(st.hooks.length) : '';
      if (!st.hooks.length) { list.append(el('p', 'muted empty', 'No endpoints yet.')); return; }
      for (const h of st.hooks) list.append(renderHook(h));
      // Keep the deliveries of endpoints that were open.
      for (const id of [...st.open.keys()]) {
        if (!st.hooks.some((h) => str(h.id) === id)) st.open.delete(id);
      }
    }

    function renderHook(h) {
      const id = str(h.id);
      const card = el('article', 'webhook' + (h.enabled === false ? ' disabled' : ''));
      card.dataset.webhookId = id;
      const top = el('div', 'webhook-head');
      top.append(el('code', 'webhook-id', id || '?'));
      top.append(el('span', 'badge ' + (h.enabled === false ? 'no' : 'yes'), h.enabled === false ? 'disabled' : 'enabled'));
      if (h.allow_private === true) top.append(el('span', 'badge warn', 'private targets allowed'));
      top.append(el('span', 'spacer'));
      const body = el('div', 'webhook-deliveries');
      body.hidden = true;
      const toggle = V.button('Deliveries', 'small ghost', () => {
        if (st.open.has(id)) { st.open.delete(id); body.hidden = true; body.replaceChildren(); toggle.setAttribute('aria-expanded', 'false'); return; }
        st.open.set(id, body);
        body.hidden = false;
        toggle.setAttribute('aria-expanded', 'true');
        body.replaceChildren(el('p', 'muted', 'Loading…'));
        V.fire(() => loadDeliveries(id, body));
      });
      toggle.setAttribute('aria-expanded', 'false');
      toggle.className += ' deliveries-button';
      top.append(toggle);
      if (V.isAdmin()) {
        // A signed "ping" delivery, whatever the endpoint's filter: checks URL, secret and receiver.
        const test = V.button('Send test', 'small ghost test-delivery-button', () => V.fire(() => sendTest(id, test, body, toggle)));
        test.title = 'Queue a signed ping delivery to this endpoint';
        top.append(test, V.button('Delete', 'small danger', () => V.fire(() => removeHook(id))));
      }
      card.append(top);
      card.append(el('div', 'webhook-url', str(h.url, '—')));
      const chips = el('div', 'chips');
      for (const ev of arr(h.events)) chips.append(el('span', 'chip', str(ev)));
      if (!chips.childElementCount) chips.append(el('span', 'muted', 'no events (or every event)'));
      card.append(chips);
      const rest = {};
      for (const [k, v] of Object.entries(h)) {
        if (!['id', 'url', 'events', 'enabled', 'allow_private', 'secret'].includes(k)) rest[k] = v;
      }
      if (Object.keys(rest).length) card.append(V.kvTable(rest));
      // Re-open deliveries that were open before a refresh.
      if (st.open.has(id)) {
        st.open.set(id, body);
        body.hidden = false;
        toggle.setAttribute('aria-expanded', 'true');
        V.fire(() => loadDeliveries(id, body));
      }
      card.append(body);
      return card;
    }

    async function loadDeliveries(id, box) {
      try {
        const res = await api.get('/api/webhooks/deliveries' + V.query({ endpoint: id, limit: 50 }));
        if (!ctx.alive || st.open.get(id) !== box) return;
        const rows = listOf(res);
        box.replaceChildren();
        if (!rows.length) { box.append(el('p', 'muted', 'No deliveries yet.')); return; }
        box.append(V.dataTable(rows, DELIVERY_ORDER, (k, v) => (k === 'status' ? statusBadge(v) : null)));
      } catch (e) {
        if (!ctx.alive || e instanceof V.Unauthorized || st.open.get(id) !== box) return;
        box.replaceChildren(V.notice(e instanceof V.ApiError && e.missing && (e.detail === 'Not Found' || e.status === 405)
          ? 'Delivery history is not available on this server.' : V.errText(e, 'Loading deliveries'),
        e instanceof V.ApiError && e.missing ? 'warn' : 'error'));
      }
    }

    async function sendTest(id, btn, body, toggle) {
      btn.disabled = true;
      try {
        const res = obj(await api.post('/api/webhooks/' + enc(id) + '/ping'));
        if (!ctx.alive) return;
        flash('Test delivery ' + str(res.delivery) + ' queued to "' + id + '"; its result shows under Deliveries.', 'ok');
        if (!st.open.has(id)) toggle.click();
        else ctx.after(1500, () => loadDeliveries(id, body));
        ctx.after(3000, () => (st.open.get(id) === body ? loadDeliveries(id, body) : null));
      } catch (e) {
        if (ctx.alive && !(e instanceof V.Unauthorized)) flash(V.errText(e, 'Test delivery'), 'error');
      } finally {
        btn.disabled = false;
      }
    }

    async function removeHook(id) {
      if (!window.confirm('Delete webhook endpoint "' + id + '"? Pending deliveries to it stop.')) return;
      try {
        await api.del('/api/webhooks/' + enc(id));
        if (!ctx.alive) return;
        st.open.delete(id);
        flash('Endpoint "' + id + '" deleted.', 'ok');
        await loadHooks();
      } catch (e) {
        if (ctx.alive && !(e instanceof V.Unauthorized)) flash(V.errText(e, 'Delete'), 'error');
      }
    }

    // ---- create (admins) ---------------------------------------------------------

    function renderCreate() {
      const show = V.isAdmin() && st.available === true;
      createPanel.node.hidden = !show;
      if (!show || createPanel.body.childElementCount) return;
      const form = el('form', 'form webhook-form');
      form.id = 'webhook-form';
      form.autocomplete = 'off';
      const grid = el('div', 'form-grid');
      const urlIn = V.input('url', 'url', '', { required: '', maxlength: '2048', placeholder: 'https://hooks.example.com/vigil', spellcheck: 'false' });
      const urlField = V.field('URL', urlIn);
      urlField.classList.add('wide');
      const secretIn = V.input('secret', 'password', '', { required: '', maxlength: '512', autocomplete: 'new-password', spellcheck: 'false' });
      secretIn.classList.add('mono');
      const gen = V.button('Generate', 'small ghost', () => {
        const b = new Uint8Array(24);
        crypto.getRandomValues(b);
        secretIn.value = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
        secretIn.type = 'text';  // so it can be copied to the receiver now; it is never shown again
      });
      const secretField = V.field('Secret', secretIn, 'signs each delivery; the server never shows it again');
      secretField.insertBefore(gen, secretField.lastChild);
      const idIn = V.input('id', 'text', '', { maxlength: '64', spellcheck: 'false', placeholder: 'optional: made up if empty' });
      const events = [...new Set([...KNOWN_EVENTS, ...st.hooks.flatMap((h) => arr(h.events).map(str))])];
      const eventsIn = V.input('events', 'text', KNOWN_EVENTS.join(', '), { spellcheck: 'false' });
      const eventsField = V.field('Events', eventsIn, 'comma-separated');
      const picks = el('div', 'chips pick-chips');
      for (const ev of events) {
        picks.append(V.button(ev, 'chip pick', () => {
          const cur = V.splitList(eventsIn.value);
          eventsIn.value = (cur.includes(ev) ? cur.filter((x) => x !== ev) : [...cur, ev]).join(', ');
        }));
      }
      eventsField.append(picks);
      eventsField.classList.add('wide');
      const priv = V.checkbox('allow_private', 'Allow private / loopback targets', false);
      grid.append(urlField, secretField, V.field('Id', idIn), eventsField, priv.wrap);
      form.append(grid);
      const formMsg = el('p', 'form-msg');
      formMsg.hidden = true;
      formMsg.setAttribute('role', 'status');
      const submit = V.button('Add endpoint', null, null, 'submit');
      const actions = el('div', 'form-actions');
      actions.append(submit, formMsg);
      form.append(actions);
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        V.fire(async () => {
          const body = { url: urlIn.value.trim(), secret: secretIn.value, events: V.splitList(eventsIn.value),
            allow_private: priv.input.checked };
          if (idIn.value.trim()) body.id = idIn.value.trim();
          if (!body.url) { V.setMsg(formMsg, 'Enter the URL.'); return; }
          if (!body.secret) { V.setMsg(formMsg, 'Enter or generate a secret.'); return; }
          submit.disabled = true;
          V.setMsg(formMsg, 'Adding…', 'info');
          try {
            await api.post('/api/webhooks', body);
            if (!ctx.alive) return;
            secretIn.value = '';
            secretIn.type = 'password';
            urlIn.value = '';
            idIn.value = '';
            V.setMsg(formMsg, 'Added.', 'ok');
            await loadHooks();
          } catch (err) {
            if (ctx.alive && !(err instanceof V.Unauthorized)) V.setMsg(formMsg, V.errText(err, 'Add'));
          } finally {
            submit.disabled = false;
          }
        });
      });
      createPanel.body.append(form);
    }

    // ---- dead letters --------------------------------------------------------------

    async function loadDead() {
      try {
        const res = await api.get('/api/webhooks/dead-letters');
        if (!ctx.alive) return;
        const rows = listOf(res);
        deadPanel.note.textContent = rows.length ? String(rows.length) : '';
        dead.replaceChildren();
        if (!rows.length) { dead.append(el('p', 'muted empty', 'No dead letters.')); return; }
        dead.append(V.dataTable(rows, DELIVERY_ORDER, (k, v) => (k === 'status' ? statusBadge(v) : null), [{
          title: '',
          render: (r) => {
            const did = r.delivery_id !== undefined && r.delivery_id !== null ? str(r.delivery_id) : (r.id !== undefined ? str(r.id) : '');
            if (!did) return null;
            const b = V.button('Replay', 'small replay-button', () => V.fire(() => replayDead(did, b)));
            return b;
          },
        }]));
      } catch (e) {
        if (!ctx.alive || e instanceof V.Unauthorized) return;
        const missing = e instanceof V.ApiError && e.missing;
        deadPanel.note.textContent = '';
        dead.replaceChildren(V.notice(missing ? 'Dead letters are not available on this server.' : V.errText(e, 'Loading dead letters'),
          missing ? 'warn' : 'error'));
        if (missing) st.deadMissing = true;
      }
    }

    async function replayDead(id, btn) {
      btn.disabled = true;
      btn.textContent = 'Replaying…';
      try {
        await api.post('/api/webhooks/dead-letters/replay', { ids: [id] });
        if (!ctx.alive) return;
        flash('Delivery ' + id + ' queued again.', 'ok');
        await loadDead();
      } catch (e) {
        if (!ctx.alive || e instanceof V.Unauthorized) return;
        btn.disabled = false;
        btn.textContent = 'Replay';
        flash(e instanceof V.ApiError && e.missing && (e.detail === 'Not Found' || e.status === 405)
          ? 'Replaying dead letters is not available on this server.' : V.errText(e, 'Replay of ' + id), 'error');
      }
    }

    async function refreshAll() {
      await Promise.allSettled([loadHooks(), loadDead()]);
    }

    // Deliveries and dead letters change on their own: refresh them while the page is open.
    V.fire(async () => {
      await refreshAll();
      if (st.available === false && !ctx.alive) return;
      ctx.every(REFRESH_MS, async () => {
        if (st.available !== false && !st.deadMissing) await loadDead();
        await Promise.allSettled([...st.open.entries()].map(([id, box]) => loadDeliveries(id, box)));
      }, false);
    });
  }

  V.pages.webhooks = { view: 'webhooks-view', nav: 'nav-webhooks', title: 'Webhooks', mount };
})();
