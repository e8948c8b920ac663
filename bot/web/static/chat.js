/* 110文字报警 — H5 chat client.
 * Plain ES2017 for old Android WeChat webviews: no modules, no build step, no dependencies.
 * Server data is only ever rendered with textContent / createTextNode, never innerHTML.
 */
(function () {
  'use strict';

  var API_CHAT = '/api/chat';
  var API_UPDATES = '/api/updates';
  var UPDATES_EVERY_MS = 20000;
  var API_UPLOAD = '/api/upload';
  var TIMEOUT_MS = 15000;
  var UPLOAD_TIMEOUT_MS = 120000;  // 10 MB over a weak mobile link
  // What the server keeps as a photo (store.incidents ATTACHMENT_TYPES / ATTACHMENT_LIMITS).
  var PHOTO_TYPES = ['image/jpeg', 'image/jpg', 'image/png', 'image/webp', 'image/gif'];
  var PHOTO_MAX_BYTES = 10 * 1024 * 1024;
  // Refusals a retry cannot fix: the file itself is wrong.
  var FINAL_UPLOAD_ERRORS = ['too_large', 'bad_type', 'empty', 'bad_content', 'missing_file'];
  var MAX_LEN = 2000;
  var COUNTER_FROM = 1800;
  var MAX_ITEMS = 100;
  var KEY_SENDER = 'alarmbot.sender';
  var KEY_TRANSCRIPT = 'alarmbot.transcript';
  var KEY_DRAFT = 'alarmbot.draft';
  var SENDER_RE = /^[A-Za-z0-9_.:@-]{1,128}$/;
  // Where mobile data fails, SMS often still gets through.
  var FALLBACK_HINT = '也可发短信至12110。';

  var WELCOME = {
    who: 'bot',
    local: true,
    text: '您好，这里是110文字报警助手（建设中）。紧急情况请拨打110，不便通话请发短信至12110。',
    buttons: [
      { title: '我要报警', payload: '/report_incident' },
      { title: '怎么使用', payload: '/help' }
    ]
  };

  var $ = function (id) { return document.getElementById(id); };
  var chatEl = $('chat');
  var logEl = $('log');
  var statusEl = $('status');
  var formEl = $('form');
  var inputEl = $('input');
  var sendEl = $('send');
  var counterEl = $('counter');
  var clearEl = $('clear');
  var locateEl = $('locate');
  var attachEl = $('attach');
  var photoEl = $('photo');

  var items = [];       // the transcript: plain, JSON-serialisable objects
  var files = {};       // upload item id -> File, in memory only (for a retry)
  var nodes = {};       // item id -> DOM node
  var sending = false;  // one request in flight at a time
  var pinned = true;    // the log is scrolled to its end: keep it there when the layout changes
  var seq = 0;

  /* ---------- storage (localStorage may be missing, full or forbidden) ---------- */

  var memoryStore = {};

  function storeGet(key) {
    try {
      var v = window.localStorage.getItem(key);
      if (v !== null) return v;
    } catch (e) { /* fall through to memory */ }
    return Object.prototype.hasOwnProperty.call(memoryStore, key) ? memoryStore[key] : null;
  }

  function storeSet(key, value) {
    memoryStore[key] = value;
    try { window.localStorage.setItem(key, value); } catch (e) { /* keep in memory only */ }
  }

  function storeRemove(key) {
    delete memoryStore[key];
    try { window.localStorage.removeItem(key); } catch (e) { /* ignore */ }
  }

  /* ---------- sender id ---------- */

  function randomHex(nBytes) {
    var bytes = new Uint8Array(nBytes);
    var c = window.crypto || window.msCrypto;
    if (c && c.getRandomValues) {
      c.getRandomValues(bytes);
    } else {
      for (var i = 0; i < nBytes; i++) bytes[i] = Math.floor(Math.random() * 256);
    }
    var hex = '';
    for (var j = 0; j < bytes.length; j++) hex += (bytes[j] < 16 ? '0' : '') + bytes[j].toString(16);
    return hex;
  }

  function getSender() {
    var id = storeGet(KEY_SENDER);
    if (!id || !SENDER_RE.test(id)) {
      id = 'h5-' + randomHex(16);
      storeSet(KEY_SENDER, id);
    }
    return id;
  }

  /* ---------- transcript model ---------- */

  function newId() {
    seq += 1;
    return Date.now().toString(36) + '-' + seq.toString(36);
  }

  function cleanButtons(list) {
    if (!Array.isArray(list)) return [];
    return list.filter(function (b) {
      return b && typeof b.title === 'string' && b.title && typeof b.payload === 'string' && b.payload;
    }).map(function (b) { return { title: b.title, payload: b.payload }; });
  }

  // Only http(s) or same-origin images; anything else (javascript:, data:...) is dropped.
  function cleanImageUrl(url) {
    if (typeof url !== 'string' || !url) return '';
    try {
      var u = new URL(url, window.location.href);
      return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : '';
    } catch (e) {
      return '';
    }
  }

  function cleanItem(raw) {
    if (!raw || (raw.who !== 'bot' && raw.who !== 'user')) return null;
    var item = { id: typeof raw.id === 'string' ? raw.id : newId(), who: raw.who };
    item.text = typeof raw.text === 'string' ? raw.text : '';
    if (raw.who === 'bot') {
      var buttons = cleanButtons(raw.buttons);
      if (buttons.length) item.buttons = buttons;
      if (typeof raw.chosen === 'number') item.chosen = raw.chosen;
      var image = cleanImageUrl(raw.image);
      if (image) item.image = image;
      if (raw.local) item.local = true;
      if (!item.text && !item.buttons && !item.image) return null;
    } else {
      if (typeof raw.payload === 'string' && raw.payload) item.payload = raw.payload;
      if (raw.upload === true) item.upload = true;
      // A request that was still in flight when the page closed may not have arrived.
      if (raw.status === 'pending' || raw.status === 'failed') item.status = 'failed';
      if (raw.status === 'unsent') item.status = 'unsent';
      if (!item.text) return null;
    }
    return item;
  }

  function loadTranscript() {
    var list;
    try {
      list = JSON.parse(storeGet(KEY_TRANSCRIPT) || '[]');
    } catch (e) {
      list = [];
    }
    if (!Array.isArray(list)) return [];
    return list.map(cleanItem).filter(Boolean).slice(-MAX_ITEMS);
  }

  function saveTranscript() {
    storeSet(KEY_TRANSCRIPT, JSON.stringify(items.slice(-MAX_ITEMS)));
  }

  function addItem(item) {
    if (!item.id) item.id = newId();
    items.push(item);
    var node = renderItem(item);
    nodes[item.id] = node;
    logEl.appendChild(node);
    while (items.length > MAX_ITEMS) {
      var old = items.shift();
      if (nodes[old.id] && nodes[old.id].parentNode) nodes[old.id].parentNode.removeChild(nodes[old.id]);
      delete nodes[old.id];
    }
    saveTranscript();
    return item;
  }

  /* ---------- rendering ---------- */

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function itemClass(item) {
    return 'msg msg-' + item.who + (item.status ? ' msg-' + item.status : '');
  }

  function renderItem(item) {
    var wrap = el('div', itemClass(item));
    var bubble = el('div', 'bubble');
    // Screen readers announce who is speaking; the prefix is visually hidden.
    bubble.appendChild(el('span', 'visually-hidden', item.who === 'bot' ? '报警助手：' : '我：'));
    bubble.appendChild(el('span', 'text', item.text));
    if (item.image) {
      var img = el('img', 'msg-image');
      img.alt = '图片';
      img.src = item.image;
      bubble.appendChild(img);
    }
    wrap.appendChild(bubble);

    if (item.buttons) {
      var group = el('div', 'quick');
      group.setAttribute('role', 'group');
      group.setAttribute('aria-label', '快捷回复');
      item.buttons.forEach(function (b, index) {
        var btn = el('button', 'quick-btn' + (item.chosen === index ? ' chosen' : ''), b.title);
        btn.type = 'button';
        btn.addEventListener('click', function () { onQuickReply(item, index); });
        group.appendChild(btn);
      });
      wrap.appendChild(group);
    }
    renderOutcome(wrap, item);
    return wrap;
  }

  // Under a user bubble: a retry button, or a note that a refused file was not sent.
  function renderOutcome(wrap, item) {
    if (item.status === 'failed') wrap.appendChild(renderRetry(item));
    if (item.status === 'unsent') wrap.appendChild(el('span', 'msg-note', '未发送'));
  }

  function renderRetry(item) {
    var btn = el('button', 'retry', '未发送，点击重试');
    btn.type = 'button';
    btn.addEventListener('click', function () {
      if (!sending) send(item);
    });
    return btn;
  }

  // Update a user bubble in place (a replaced node would be re-announced by the live region).
  function setStatus(item, status) {
    if (status) item.status = status; else delete item.status;
    var node = nodes[item.id];
    if (!node) return;
    node.className = itemClass(item);
    var old = node.querySelectorAll('.retry, .msg-note');
    for (var k = 0; k < old.length; k++) node.removeChild(old[k]);
    renderOutcome(node, item);
  }

  function showStatus(text, isError) {
    statusEl.textContent = text || '';
    statusEl.className = 'status' + (isError ? ' is-error' : '');
    keepPinned();
  }

  // Quick replies are live only on bot messages after the user's last message. A photo is an
  // aside: the question asked before it is still open, so are its buttons.
  function refreshControls() {
    var lastUser = -1;
    items.forEach(function (it, i) { if (it.who === 'user' && !it.upload) lastUser = i; });
    items.forEach(function (it, i) {
      var node = nodes[it.id];
      if (!node) return;
      var live = !sending && i > lastUser && typeof it.chosen !== 'number';
      var buttons = node.querySelectorAll('.quick-btn, .retry');
      for (var k = 0; k < buttons.length; k++) {
        buttons[k].disabled = buttons[k].className === 'retry' ? sending : !live;
      }
    });
    sendEl.disabled = sending;
    clearEl.disabled = sending;
    formEl.setAttribute('aria-busy', sending ? 'true' : 'false');
  }

  function scrollToEnd() {
    chatEl.scrollTop = chatEl.scrollHeight;
    pinned = true;
  }

  function keepPinned() {
    if (pinned) scrollToEnd();
  }

  /* ---------- network ---------- */

  function failure(status, data, what) {
    var message = data && typeof data.message === 'string' && data.message ? data.message : '';
    var code = data && typeof data.error === 'string' ? data.error : '';
    if (!message) {
      if (status === 0) message = '网络连接失败，' + what + '未发送。';
      else if (status === -1) message = '网络太慢，' + what + '未发送。';
      else if (status >= 500) message = '服务暂时不可用，' + what + '未发送。';
      else message = what + '未发送。';
      message += '请点击重试。' + FALLBACK_HINT;
    }
    return { status: status, code: code, message: message };
  }

  // XMLHttpRequest rather than fetch: built-in timeout and upload progress, works in every old
  // webview. Resolves with the bot's messages.
  function post(url, body, options) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open('POST', url, true);
      xhr.timeout = options.timeout;
      if (options.contentType) xhr.setRequestHeader('Content-Type', options.contentType);
      if (options.onProgress && xhr.upload) {
        xhr.upload.onprogress = function (e) {
          if (e.lengthComputable && e.total) options.onProgress(e.loaded / e.total);
        };
      }
      xhr.onload = function () {
        var data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
        if (xhr.status >= 200 && xhr.status < 300 && data && Array.isArray(data.messages)) {
          resolve(data.messages);
        } else {
          reject(failure(xhr.status, data, options.what));
        }
      };
      xhr.onerror = function () { reject(failure(0, null, options.what)); };
      xhr.ontimeout = function () { reject(failure(-1, null, options.what)); };
      xhr.send(body);
    });
  }

  function postChat(body) {
    return post(API_CHAT, JSON.stringify(body), {
      timeout: TIMEOUT_MS, contentType: 'application/json', what: '消息'
    });
  }

  // multipart/form-data (the browser sets the boundary). The file goes under a neutral name:
  // the phone's own file name can carry a person's name.
  function postUpload(file, onProgress) {
    var form = new FormData();
    form.append('sender', sender);
    form.append('file', file, 'photo');
    return post(API_UPLOAD, form, {
      timeout: UPLOAD_TIMEOUT_MS, what: '照片', onProgress: onProgress
    });
  }

  function send(item) {
    if (sending) return;
    if (item.upload && !files[item.id]) {
      // The page was reloaded: the photo itself is gone, the citizen has to choose it again.
      setStatus(item, 'unsent');
      saveTranscript();
      showStatus('请重新选择这张照片。', true);
      choosePhoto();
      return;
    }
    sending = true;
    setStatus(item, 'pending');
    saveTranscript();
    showStatus(item.upload ? '正在上传照片…' : '正在发送…', false);
    refreshControls();
    scrollToEnd();

    var request;
    if (item.upload) {
      var shown = 0;
      request = postUpload(files[item.id], function (fraction) {
        var step = Math.floor(fraction * 4) * 25;  // a few updates only: the status is read aloud
        if (step > shown && step < 100) {
          shown = step;
          showStatus('正在上传照片… ' + step + '%', false);
        }
      });
    } else {
      var body = { sender: sender };
      if (item.payload) body.payload = item.payload; else body.text = item.text;
      request = postChat(body);
    }

    request.then(function (messages) {
      sending = false;
      delete files[item.id];
      setStatus(item, null);
      showStatus('', false);
      messages.forEach(function (m) {
        var bot = cleanItem({ who: 'bot', text: m && m.text, buttons: m && m.buttons, image: m && m.image });
        if (bot) addItem(bot);
      });
    }, function (err) {
      sending = false;
      if (item.upload && FINAL_UPLOAD_ERRORS.indexOf(err.code) >= 0) {
        delete files[item.id];
        setStatus(item, 'unsent');
      } else {
        setStatus(item, 'failed');
      }
      showStatus(err.message, true);
    }).then(function () {
      saveTranscript();
      refreshControls();
      scrollToEnd();
    });
  }

  /* ---------- user actions ---------- */

  function onQuickReply(item, index) {
    if (sending || typeof item.chosen === 'number') return;
    var b = item.buttons[index];
    item.chosen = index;
    var btn = nodes[item.id] && nodes[item.id].querySelectorAll('.quick-btn')[index];
    if (btn) btn.className += ' chosen';
    send(addItem({ who: 'user', text: b.title, payload: b.payload }));
  }

  function submitInput() {
    if (sending) return;  // what was typed stays in the box
    var text = inputEl.value.replace(/^\s+|\s+$/g, '');
    if (!text) {
      inputEl.focus();
      return;
    }
    if (text.length > MAX_LEN) {
      showStatus('消息太长（最多' + MAX_LEN + '字），请分几次发送。', true);
      return;
    }
    inputEl.value = '';
    storeRemove(KEY_DRAFT);
    onInputChanged();
    send(addItem({ who: 'user', text: text }));
  }

  /* A shared point is the surest location there is: Text-to-911 practice puts it first. */
  function shareLocation() {
    if (sending) return;
    if (!navigator.geolocation) {
      showStatus('这台设备不能定位，请用文字说明地点（路名门牌或地标）。', true);
      return;
    }
    showStatus('正在获取定位…', false);
    navigator.geolocation.getCurrentPosition(function (pos) {
      var lat = Math.round(pos.coords.latitude * 1e6) / 1e6;
      var lng = Math.round(pos.coords.longitude * 1e6) / 1e6;
      showStatus('', false);
      send(addItem({
        who: 'user',
        text: '我的位置（' + lat.toFixed(5) + ', ' + lng.toFixed(5) + '）',
        payload: '/inform' + JSON.stringify({ lat: lat, lng: lng })
      }));
    }, function () {
      showStatus('没能获取定位，请用文字说明地点（路名门牌或地标）。', true);
    }, { enableHighAccuracy: true, timeout: 10000, maximumAge: 60000 });
  }

  function formatSize(bytes) {
    if (bytes < 1024 * 1024) return Math.max(1, Math.round(bytes / 1024)) + ' KB';
    return (bytes / (1024 * 1024)).toFixed(1) + ' MB';
  }

  function choosePhoto() {
    if (sending) {
      showStatus('正在发送，请稍候再选照片。', false);
      return;
    }
    photoEl.value = '';  // choosing the same photo again still fires "change"
    photoEl.click();
  }

  // Checked here first so a wrong or huge file is not sent over a weak link for nothing;
  // the server checks again.
  function onPhotoChosen() {
    var file = photoEl.files && photoEl.files[0];
    photoEl.value = '';
    if (!file) return;
    if (PHOTO_TYPES.indexOf((file.type || '').toLowerCase()) < 0) {
      showStatus('只能发送JPG、PNG、WEBP或GIF格式的照片，请重新选择。', true);
    } else if (!file.size) {
      showStatus('照片是空的，请重新选择。', true);
    } else if (file.size > PHOTO_MAX_BYTES) {
      showStatus('照片太大（最大' + PHOTO_MAX_BYTES / 1048576 + 'MB），请换一张小一些的，或用文字说明。', true);
    } else {
      var item = addItem({ who: 'user', text: '[照片] ' + formatSize(file.size), upload: true });
      files[item.id] = file;
      send(item);
      return;
    }
    attachEl.focus();
  }

  function onInputChanged() {
    var len = inputEl.value.length;
    if (len >= COUNTER_FROM) {
      counterEl.textContent = '已输入' + len + '/' + MAX_LEN + '字';
      counterEl.className = 'counter is-near';
    } else {
      counterEl.textContent = '';
      counterEl.className = 'counter';
    }
    // Grow the textarea with its content (CSS max-height caps it).
    inputEl.style.height = 'auto';
    inputEl.style.height = (inputEl.scrollHeight + 4) + 'px';
    keepPinned();
  }

  function clearHistory() {
    if (sending) return;
    if (!window.confirm('清除本机上的聊天记录？已发出的报警不受影响。')) return;
    items = [];
    nodes = {};
    files = {};
    logEl.textContent = '';
    storeRemove(KEY_TRANSCRIPT);
    showStatus('', false);
    addItem(Object.assign({}, WELCOME));
    refreshControls();
    inputEl.focus();
  }

  formEl.addEventListener('submit', function (e) {
    e.preventDefault();
    submitInput();
  });

  inputEl.addEventListener('keydown', function (e) {
    var enter = e.key === 'Enter' || e.keyCode === 13;
    // Never send while an IME (pinyin etc.) is composing: Enter then commits the candidate.
    if (enter && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      submitInput();
    }
  });

  inputEl.addEventListener('input', function () {
    storeSet(KEY_DRAFT, inputEl.value);
    onInputChanged();
  });

  clearEl.addEventListener('click', clearHistory);
  locateEl.addEventListener('click', shareLocation);
  attachEl.addEventListener('click', choosePhoto);
  photoEl.addEventListener('change', onPhotoChosen);

  chatEl.addEventListener('scroll', function () {
    pinned = chatEl.scrollHeight - chatEl.scrollTop - chatEl.clientHeight < 48;
  });
  // The on-screen keyboard opening shrinks the window: keep the latest message in view.
  window.addEventListener('resize', keepPinned);

  /* ---------- start ---------- */

  var sender = getSender();
  var restored = loadTranscript();
  if (restored.length) {
    restored.forEach(function (item) {
      items.push(item);
      nodes[item.id] = renderItem(item);
      logEl.appendChild(nodes[item.id]);
    });
    if (restored.some(function (it) { return it.status === 'failed'; })) {
      showStatus('有消息未发送，请点击重试。' + FALLBACK_HINT, true);
    }
  } else {
    addItem(Object.assign({}, WELCOME));
  }
  inputEl.value = storeGet(KEY_DRAFT) || '';
  onInputChanged();
  refreshControls();
  scrollToEnd();

  /* ---------- news about the citizen's reports (12345 replies, mediator assigned) ---------- */

  // Each message is handed out once by the server, so a second tab does not repeat it.
  function pollUpdates() {
    if (document.hidden) return;
    var xhr = new XMLHttpRequest();
    xhr.open('GET', API_UPDATES + '?sender=' + encodeURIComponent(sender), true);
    xhr.timeout = TIMEOUT_MS;
    xhr.onload = function () {
      var data = null;
      try { data = JSON.parse(xhr.responseText); } catch (e) { return; }
      if (xhr.status !== 200 || !data || !Array.isArray(data.messages)) return;
      if (!data.messages.length) return;
      data.messages.forEach(function (m) {
        var bot = cleanItem({ who: 'bot', text: m && m.text });
        if (bot) addItem(bot);
      });
      saveTranscript();
      scrollToEnd();
    };
    xhr.send();
  }
  pollUpdates();
  setInterval(pollUpdates, UPDATES_EVERY_MS);
  document.addEventListener('visibilitychange', pollUpdates);
})();
