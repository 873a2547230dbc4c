// Rules page (#/rules): list, create / edit / delete (admins), and the replay panel that runs a
// rule (or an ad-hoc prompt) over stored packets of a time range.
'use strict';

(function () {
  const V = window.Vigil;
  const { el, str, num, arr, obj, api, enc } = V;
  const SEVERITIES = ['info', 'warning', 'critical'];
  const KINDS = ['label', 'prompt'];
  const COMMON = ['id', 'kind', 'cameras', 'severity', 'title', 'enabled'];
  const KIND_FIELDS = { label: ['label', 'min_count'], prompt: ['prompt', 'think'] };
  const HIDDEN = ['v', 'type', 'warning'];  // fields the server fills in itself (never sent back)
  const ID_RE = '[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}';
  const POLL_MS = 500;
  const ADHOC = '__adhoc__';

  function mount(root, _param, ctx) {
    const st = { rules: [], available: null, editing: null, job: null, jobGen: 0 };

    const head = el('div', 'page-head');
    const count = el('span', 'note');
    head.append(el('h1', null, 'Rules'), count, el('span', 'spacer'));
    const newBtn = V.button('+ New rule', 'small', () => openEditor(null));
    newBtn.id = 'rule-new-button';
    newBtn.hidden = !V.isAdmin();
    head.append(newBtn);
    root.append(head);

    const msg = el('div', 'page-msgs');
    root.append(msg);

    const editor = V.panel('New rule', 'rule-editor');
    editor.node.hidden = true;
    root.append(editor.node);

    const listPanel = V.panel('Rules', 'rules-panel');
    const list = el('div', 'rules-list');
    list.id = 'rules-list';
    listPanel.body.append(list);
    root.append(listPanel.node);

    const replay = V.panel('Replay', 'replay-panel');
    root.append(replay.node);

    function flash(text, kind) {
      msg.replaceChildren(V.notice(text, kind));
      if (kind === 'ok') ctx.after(4000, () => msg.replaceChildren());
    }

    // ---- list ----------------------------------------------------------------------

    async function load() {
      try {
        const res = await api.get('/api/rules');
        if (!ctx.alive) return;
        st.available = true;
        st.rules = (Array.isArray(res) ? res : arr(obj(res).items)).filter(V.isObj);
        renderList();
      } catch (e) {
        if (!ctx.alive || e instanceof V.Unauthorized) return;
        st.available = !(e instanceof V.ApiError && e.missing);
        st.rules = [];
        list.replaceChildren(V.notice(st.available ? V.errText(e, 'Loading rules')
          : 'Rules are not available on this server.', st.available ? 'error' : 'warn'));
        newBtn.hidden = !V.isAdmin() || !st.available;
        count.textContent = '';
      }
      fillRuleSelect();
    }

    function condition(r) {
      if (r.kind === 'label') {
        const n = num(r.min_count);
        return str(r.label, '?') + (n !== null && n > 1 ? ' ≥ ' + n : '');
      }
      if (r.kind === 'prompt') return '“' + str(r.prompt) + '”' + (r.think ? ' (think)' : '');
      const zones = arr(r.zones).length ? ' in ' + arr(r.zones).join(', ') : '';
      if (r.kind === 'zone') return 'motion' + (zones || ' in (no zone)') + (r.label ? ' with ' + str(r.label) : '');
      if (r.kind === 'motion') return 'motion ≥ ' + V.pct(num(r.min_area) || 0) + zones;
      if (r.kind === 'count') return str(r.label, '?') + ' count ' + str(r.min, 1) + (r.max !== null && r.max !== undefined ? '–' + r.max : '+');
      if (r.kind === 'dwell') return (str(r.label) || 'motion') + ' stays ' + str(r.min_s, 30) + ' s' + zones;
      // Unknown kinds: their own fields, as compact JSON.
      const rest = {};
      for (const [k, v] of Object.entries(r)) if (!COMMON.includes(k) && !HIDDEN.includes(k)) rest[k] = v;
      return V.plain(rest);
    }

    function renderList() {
      list.replaceChildren();
      count.textContent = st.rules.length ? String(st.rules.length) : '';
      newBtn.hidden = !V.isAdmin();
      if (!st.rules.length) { list.append(el('p', 'muted empty', 'No rules yet.')); return; }
      const t = el('table', 'data rules-table');
      const hr = el('tr');
      ['', 'id', 'kind', 'title', 'severity', 'cameras', 'condition', ''].forEach((h) => hr.append(el('th', null, h)));
      const thead = el('thead');
      thead.append(hr);
      const tbody = el('tbody');
      for (const r of st.rules) {
        const tr = el('tr', 'rule-row' + (r.enabled === false ? ' disabled' : ''));
        tr.dataset.ruleId = str(r.id);
        const cell = (node) => { const td = el('td'); td.append(node); tr.append(td); return td; };
        cell(el('span', 'badge ' + (r.enabled === false ? 'no' : 'yes'), r.enabled === false ? 'off' : 'on'));
        cell(el('code', null, str(r.id)));
        cell(el('span', 'chip', str(r.kind, '?')));
        cell(el('span', null, str(r.title) || '—'));
        const sev = V.pick(r.severity, SEVERITIES, 'info');
        const sevTd = cell(el('span', 'badge sev', str(r.severity, '—')));
        sevTd.className = 'sev-' + sev;
        const cams = arr(r.cameras);
        cell(el('span', cams.length ? null : 'muted', cams.length ? cams.map((c) => V.cameraName(c)).join(', ') : 'all'));
        const cond = cell(el('span', 'condition', condition(r)));
        cond.className = 'wrap';
        if (r.warning) {
          const w = el('span', 'badge warn rule-warning', '⚠ cannot match');
          w.title = str(r.warning);
          cond.append(' ', w, el('span', 'rule-warning-text', str(r.warning)));
        }
        // Narrow screens: each cell says what it is (the table becomes cards).
        ['', 'id', 'kind', 'title', 'severity', 'cameras', 'condition', ''].forEach((h, i) => {
          if (tr.children[i] && h) tr.children[i].dataset.label = h;
        });
        const actions = el('div', 'row-actions');
        const rp = V.button('Replay', 'small ghost', () => pickForReplay(str(r.id)));
        rp.title = 'Run this rule over stored packets';
        actions.append(rp);
        if (V.isAdmin()) {
          actions.append(V.button('Edit', 'small ghost', () => openEditor(r)),
            V.button('Delete', 'small danger', () => V.fire(() => remove(r))));
        }
        cell(actions).className = 'actions';
        tbody.append(tr);
      }
      t.append(thead, tbody);
      list.append(t);
    }

    async function remove(r) {
      if (!window.confirm('Delete rule "' + str(r.id) + '"? Its open alerts stay as they are.')) return;
      try {
        await api.del('/api/rules/' + enc(str(r.id)));
        if (!ctx.alive) return;
        flash('Rule "' + str(r.id) + '" deleted.', 'ok');
        if (st.editing && str(st.editing.id) === str(r.id)) closeEditor();
        await load();
      } catch (e) {
        if (ctx.alive && !(e instanceof V.Unauthorized)) flash(V.errText(e, 'Delete'), 'error');
      }
    }

    // ---- editor --------------------------------------------------------------------

    function closeEditor() {
      st.editing = null;
      editor.node.hidden = true;
      editor.body.replaceChildren();
    }

    // rule: an existing rule (edit, PUT) or null (create, POST).
    function openEditor(rule) {
      const editing = !!rule;
      const r = obj(rule);
      st.editing = editing ? r : null;
      editor.head.firstChild.textContent = editing ? 'Edit rule ' : 'New rule';
      editor.note.textContent = editing ? str(r.id) : '';
      editor.node.hidden = false;
      editor.body.replaceChildren();

      const form = el('form', 'form rule-form');
      form.id = 'rule-form';
      form.autocomplete = 'off';
      const grid = el('div', 'form-grid');

      const kind0 = str(r.kind, 'label');
      const kindOpts = [...KINDS];
      if (!kindOpts.includes(kind0)) kindOpts.push(kind0);
      const kindSel = V.select('kind', [...kindOpts.map((k) => [k, k]), ['__other__', 'other…']], kind0);
      const otherKind = V.input('kind_other', 'text', '', { placeholder: 'kind name', maxlength: '64', spellcheck: 'false' });
      const otherField = V.field('Kind name', otherKind);
      otherField.hidden = true;
      grid.append(V.field('Kind', kindSel), otherField);

      const idIn = V.input('id', 'text', r.id, { required: '', pattern: ID_RE, maxlength: '64', spellcheck: 'false',
        placeholder: 'e.g. person-at-night' });
      if (editing) idIn.readOnly = true;
      grid.append(V.field('Id', idIn, editing ? 'the id cannot change' : 'letters, digits, _ . -'));
      const titleIn = V.input('title', 'text', r.title, { maxlength: '200', placeholder: 'Shown on alerts' });
      grid.append(V.field('Title', titleIn));
      const sev0 = str(r.severity, 'warning');
      const sevSel = V.select('severity', [...new Set([...SEVERITIES, sev0])].map((s) => [s, s]), sev0);
      grid.append(V.field('Severity', sevSel));

      const camsIn = V.input('cameras', 'text', arr(r.cameras).join(', '), { spellcheck: 'false', placeholder: 'all cameras' });
      const camField = V.field('Cameras', camsIn, 'comma-separated ids; empty: every camera');
      const camPicks = el('div', 'chips pick-chips');
      for (const [cid] of V.cameraOptions()) {
        const b = V.button(cid, 'chip pick', () => {
          const cur = V.splitList(camsIn.value);
          camsIn.value = (cur.includes(cid) ? cur.filter((x) => x !== cid) : [...cur, cid]).join(', ');
        });
        b.title = 'Add or remove ' + V.cameraName(cid);
        camPicks.append(b);
      }
      if (camPicks.childElementCount) camField.append(camPicks);
      camField.classList.add('wide');
      grid.append(camField);

      // Kind-specific fields
      const labelIn = V.input('label', 'text', r.label, { maxlength: '64', placeholder: 'e.g. person' });
      const minIn = V.input('min_count', 'number', num(r.min_count) !== null ? r.min_count : 1, { min: '1', step: '1' });
      const labelBox = el('div', 'kind-fields');
      labelBox.dataset.kind = 'label';
      labelBox.append(V.field('Label', labelIn), V.field('Min count', minIn, 'in one frame of a packet'));
      const promptIn = el('textarea');
      promptIn.name = 'prompt';
      promptIn.rows = 3;
      promptIn.maxLength = 500;
      promptIn.value = str(r.prompt);
      promptIn.placeholder = 'e.g. a person climbs the fence';
      const think = V.checkbox('think', 'Think (re-ask with reasoning when unsure)', r.think === true);
      const promptBox = el('div', 'kind-fields');
      promptBox.dataset.kind = 'prompt';
      const pf = V.field('Prompt', promptIn, '3–500 characters, answered by the model for each packet');
      pf.classList.add('wide');
      promptBox.append(pf, think.wrap);
      grid.append(labelBox, promptBox);

      const enabled = V.checkbox('enabled', 'Enabled', r.enabled !== false);
      grid.append(enabled.wrap);

      // Everything else (consolidate_s, quiet_s, fields of kinds this page does not know).
      const extraIn = el('textarea');
      extraIn.name = 'extra';
      extraIn.rows = 4;
      extraIn.spellcheck = false;
      extraIn.className = 'mono';
      const extraField = V.field('Other fields (JSON object)', extraIn, 'e.g. {"consolidate_s": 30, "quiet_s": 15}; server defaults apply to missing ones');
      extraField.classList.add('wide');
      grid.append(extraField);
      form.append(grid);

      // Fields of the kinds this form knows get their own inputs; everything else is JSON.
      const extrasFor = (kind) => {
        const known = [...COMMON, ...HIDDEN, ...(KIND_FIELDS[kind] ? Object.values(KIND_FIELDS).flat() : [])];
        const rest = {};
        for (const [k, v] of Object.entries(r)) if (!known.includes(k)) rest[k] = v;
        return rest;
      };
      let shownKind = null;
      const currentKind = () => (kindSel.value === '__other__' ? otherKind.value.trim() : kindSel.value);
      const syncKind = () => {
        const kind = kindSel.value;
        otherField.hidden = kind !== '__other__';
        labelBox.hidden = kind !== 'label';
        promptBox.hidden = kind !== 'prompt';
        labelIn.required = kind === 'label';
        promptIn.required = kind === 'prompt';
        // Re-derive the extras for the kind shown, unless the user has typed in them.
        if (shownKind === null || extraIn.dataset.touched !== 'true') {
          const extra = extrasFor(kind === '__other__' ? '' : kind);
          extraIn.value = Object.keys(extra).length ? JSON.stringify(extra, null, 2) : '{}';
        }
        shownKind = kind;
      };
      extraIn.addEventListener('input', () => { extraIn.dataset.touched = 'true'; });
      kindSel.addEventListener('change', syncKind);
      syncKind();

      const formMsg = el('p', 'form-msg');
      formMsg.hidden = true;
      formMsg.setAttribute('role', 'status');
      const submit = V.button(editing ? 'Save rule' : 'Create rule', null, null, 'submit');
      const actions = el('div', 'form-actions');
      actions.append(submit, V.button('Cancel', 'ghost', closeEditor), formMsg);
      form.append(actions);

      form.addEventListener('submit', (e) => {
        e.preventDefault();
        V.fire(async () => {
          const kind = currentKind();
          if (!kind) { V.setMsg(formMsg, 'Choose a kind.'); return; }
          let extra = {};
          const txt = extraIn.value.trim();
          if (txt) {
            try { extra = JSON.parse(txt); } catch (err) { V.setMsg(formMsg, 'Other fields: not valid JSON (' + err.message + ').'); return; }
            if (!V.isObj(extra)) { V.setMsg(formMsg, 'Other fields must be a JSON object: {…}.'); return; }
          }
          const body = Object.assign({}, extra, {
            kind, id: idIn.value.trim(), title: titleIn.value.trim(), severity: sevSel.value,
            cameras: V.splitList(camsIn.value), enabled: enabled.input.checked,
          });
          if (!body.id) { V.setMsg(formMsg, 'Enter an id.'); return; }
          if (kind === 'label') {
            body.label = labelIn.value.trim();
            const n = Number(minIn.value);
            if (!body.label) { V.setMsg(formMsg, 'Enter the label.'); return; }
            if (!Number.isInteger(n) || n < 1) { V.setMsg(formMsg, 'Min count must be a whole number ≥ 1.'); return; }
            body.min_count = n;
          } else if (kind === 'prompt') {
            body.prompt = promptIn.value.trim();
            if (body.prompt.length < 3) { V.setMsg(formMsg, 'The prompt needs at least 3 characters.'); return; }
            body.think = think.input.checked;
          }
          submit.disabled = true;
          V.setMsg(formMsg, 'Saving…', 'info');
          try {
            const saved = obj(editing ? await api.put('/api/rules/' + enc(str(r.id)), body) : await api.post('/api/rules', body));
            if (!ctx.alive) return;
            closeEditor();
            if (saved.warning) flash('Rule "' + body.id + '" ' + (editing ? 'saved' : 'created') + ', but: ' + str(saved.warning), 'warn');
            else flash('Rule "' + body.id + '" ' + (editing ? 'saved.' : 'created.'), 'ok');
            await load();
          } catch (err) {
            if (!ctx.alive || err instanceof V.Unauthorized) return;
            V.setMsg(formMsg, err instanceof V.ApiError && err.missing && !editing
              ? 'Creating rules is not available on this server (' + err.message + ').' : V.errText(err, 'Save'));
          } finally {
            submit.disabled = false;
          }
        });
      });
      editor.body.append(form);
      editor.node.scrollIntoView({ block: 'nearest' });
      (editing ? titleIn : idIn).focus();
    }

    // ---- replay --------------------------------------------------------------------

    const rform = el('form', 'form replay-form');
    rform.id = 'replay-form';
    rform.autocomplete = 'off';
    const rgrid = el('div', 'form-grid');
    const ruleSel = V.select('rule_id', [[ADHOC, 'Ad-hoc prompt…']], ADHOC);
    ruleSel.id = 'replay-rule';
    const adhocIn = el('textarea');
    adhocIn.name = 'prompt';
    adhocIn.id = 'replay-prompt';
    adhocIn.rows = 2;
    adhocIn.maxLength = 500;
    adhocIn.placeholder = 'e.g. a delivery van is parked at the gate';
    const adhocField = V.field('Prompt', adhocIn);
    adhocField.classList.add('wide');
    const camSel = V.select('camera', [['', 'all cameras'], ...V.cameraOptions()], '');
    camSel.id = 'replay-camera';
    const now = new Date();
    const sinceIn = V.input('since', 'datetime-local', V.toLocalInput(new Date(now.getTime() - 3600e3)), { required: '' });
    sinceIn.id = 'replay-since';
    const untilIn = V.input('until', 'datetime-local', V.toLocalInput(new Date(now.getTime() + 60e3)), { required: '' });
    untilIn.id = 'replay-until';
    const limitIn = V.input('limit', 'number', 50, { min: '1', max: '1000', step: '1' });
    limitIn.id = 'replay-limit';
    const ruleField = V.field('Rule', ruleSel);
    ruleField.classList.add('span2');
    rgrid.append(ruleField, V.field('Camera', camSel), V.field('Since', sinceIn),
      V.field('Until', untilIn), V.field('Max packets', limitIn), adhocField);
    rform.append(rgrid);
    const runBtn = V.button('Run replay', null, null, 'submit');
    runBtn.id = 'replay-run';
    const stopBtn = V.button('Stop', 'ghost', () => stopJob('Stopped watching this job (it may still run on the server).'));
    stopBtn.hidden = true;
    const onlyMatches = V.checkbox('only_matches', 'matches only', false);
    const progress = el('span', 'replay-progress muted');
    progress.setAttribute('role', 'status');
    const ractions = el('div', 'form-actions');
    ractions.append(runBtn, stopBtn, onlyMatches.wrap, progress);
    rform.append(ractions);
    const results = el('div', 'replay-results');
    results.id = 'replay-results';
    replay.body.append(rform, results);

    onlyMatches.input.addEventListener('change', () => results.classList.toggle('only-matches', onlyMatches.input.checked));
    const syncAdhoc = () => { adhocField.hidden = ruleSel.value !== ADHOC; };
    ruleSel.addEventListener('change', syncAdhoc);
    syncAdhoc();

    function fillRuleSelect() {
      const cur = ruleSel.value;
      const opts = st.rules.map((r) => [str(r.id), str(r.id) + (r.title ? ' — ' + str(r.title) : '') + ' (' + str(r.kind, '?') + ')']);
      ruleSel.replaceChildren();
      for (const [v, label] of [...opts, [ADHOC, 'Ad-hoc prompt…']]) {
        const o = el('option', null, label);
        o.value = v;
        ruleSel.append(o);
      }
      ruleSel.value = opts.some(([v]) => v === cur) || cur === ADHOC ? cur : ADHOC;
      if (cur === ADHOC && opts.length && !adhocIn.value && !st.picked) ruleSel.value = opts[0][0];
      syncAdhoc();
    }

    function pickForReplay(ruleId) {
      st.picked = true;
      ruleSel.value = ruleId;
      syncAdhoc();
      replay.node.scrollIntoView({ block: 'start', behavior: 'smooth' });
      runBtn.focus({ preventScroll: true });
    }

    function stopJob(text) {
      st.jobGen++;
      st.job = null;
      runBtn.disabled = false;
      stopBtn.hidden = true;
      if (text) progress.textContent = text;
    }

    rform.addEventListener('submit', (e) => {
      e.preventDefault();
      V.fire(startReplay);
    });

    async function startReplay() {
      const since = V.fromLocalInput(sinceIn.value);
      const until = V.fromLocalInput(untilIn.value);
      if (!since || !until) { progress.textContent = 'Choose a time range.'; return; }
      if (since >= until) { progress.textContent = '“Since” must be before “until”.'; return; }
      const limit = Math.max(1, Math.min(500, Math.round(Number(limitIn.value) || 50)));
      const body = { since, until, limit };
      if (camSel.value) body.camera = camSel.value;
      if (ruleSel.value === ADHOC) {
        const prompt = adhocIn.value.trim();
        if (prompt.length < 3) { progress.textContent = 'Type a prompt (at least 3 characters), or choose a rule.'; return; }
        body.rule = { kind: 'prompt', id: 'adhoc', title: 'Ad-hoc replay', severity: 'info', prompt };
      } else body.rule_id = ruleSel.value;

      stopJob('');
      const gen = st.jobGen;
      runBtn.disabled = true;
      results.replaceChildren();
      st.resultKeys = new Set();
      st.matches = 0;
      progress.textContent = 'Starting…';
      let res;
      try {
        res = await api.post('/api/replay', body);
      } catch (e) {
        if (!ctx.alive || gen !== st.jobGen || e instanceof V.Unauthorized) return;
        runBtn.disabled = false;
        progress.textContent = '';
        results.replaceChildren(V.notice(e instanceof V.ApiError && e.missing
          ? 'Replay is not available on this server.' : V.errText(e, 'Replay'), e instanceof V.ApiError && e.missing ? 'warn' : 'error'));
        return;
      }
      if (!ctx.alive || gen !== st.jobGen) return;
      const r = obj(res);
      const job = V.isObj(r.job) ? r.job.id : (r.job !== undefined ? r.job : r.id);
      if (job === undefined || job === null || job === '') {
        runBtn.disabled = false;
        progress.textContent = 'The server did not return a job id.';
        return;
      }
      st.job = String(job);
      stopBtn.hidden = false;
      progress.textContent = 'Queued (job ' + st.job + ')';
      poll(gen);
    }

    function poll(gen) {
      if (!ctx.alive || gen !== st.jobGen || !st.job) return;
      V.fire(async () => {
        let j;
        try {
          j = obj(await api.get('/api/replay/' + enc(st.job)));
        } catch (e) {
          if (!ctx.alive || gen !== st.jobGen || e instanceof V.Unauthorized) return;
          if (e instanceof V.ApiError && e.missing) {
            stopJob('');
            results.append(V.notice(e.status === 404 && e.detail && e.detail !== 'Not Found'
              ? 'Replay job not found: ' + e.detail : 'Replay is not available on this server.', 'warn'));
            return;
          }
          progress.textContent = V.errText(e, 'Polling') + ' — retrying…';
          ctx.after(POLL_MS * 4, () => poll(gen));
          return;
        }
        if (!ctx.alive || gen !== st.jobGen) return;
        const items = arr(j.results);
        items.forEach((x, i) => addResult(x, i));
        const state = str(j.state, 'unknown');
        const scanned = num(j.scanned);
        progress.textContent = state + (scanned !== null ? ' · ' + scanned + ' scanned' : '') + ' · ' +
          st.resultKeys.size + ' results · ' + st.matches + (st.matches === 1 ? ' match' : ' matches');
        progress.dataset.state = state;
        if (state === 'done' || state === 'error') {
          stopJob(null);
          if (state === 'error') results.prepend(V.notice('Replay failed: ' + str(j.error, 'unknown error'), 'error'));
          else if (!items.length) results.append(el('p', 'muted empty', 'No packets in this range.'));
          return;
        }
        ctx.after(POLL_MS, () => poll(gen));
      });
    }

    function addResult(x, i) {
      if (!V.isObj(x)) return;
      const key = x.packet_id !== undefined && x.packet_id !== null ? 'p:' + str(x.packet_id) : 'i:' + i;
      if (st.resultKeys.has(key)) return;
      st.resultKeys.add(key);
      const match = x.match === true;
      if (match) st.matches++;
      const card = el('article', 'replay-result ' + (match ? 'match' : 'nomatch'));
      if (x.packet_id) card.dataset.packetId = str(x.packet_id);
      const h = el('div', 'event-head');
      h.append(el('span', 'badge ' + (match ? 'match' : 'nomatch'), match ? 'match' : 'no match'));
      const conf = num(x.confidence);
      if (conf !== null) h.append(el('span', 'meta', V.pct(conf) + ' confident'));
      if (x.camera !== undefined) h.append(V.link(V.cameraHref(x.camera), V.cameraName(x.camera), 'event-camera'));
      h.append(V.timeEl(x.start));
      if (x.packet_id) h.append(V.link(V.packetHref(str(x.packet_id)), 'inspect', 'inspect'));
      card.append(h);
      const ev = str(x.evidence).trim();
      if (ev) card.append(el('p', 'evidence', ev));
      const summary = str(x.summary).trim();
      if (summary) card.append(el('p', 'summary muted', summary));
      card.append(V.strip(x.frames, x.packet_id ? str(x.packet_id) : null));
      // Other fields the server may add, shown small.
      const known = ['packet_id', 'camera', 'start', 'match', 'confidence', 'evidence', 'summary', 'frames'];
      const rest = {};
      for (const [k, v] of Object.entries(x)) if (!known.includes(k)) rest[k] = v;
      if (Object.keys(rest).length) card.append(V.kvTable(rest));
      // Matches first, in arrival order.
      if (match) {
        const firstNo = results.querySelector('.replay-result.nomatch');
        results.insertBefore(card, firstNo);
      } else results.append(card);
    }

    ctx.onDispose(() => { st.jobGen++; });
    V.fire(load);
  }

  V.pages.rules = { view: 'rules-view', nav: 'nav-rules', title: 'Rules', mount };
})();
