(function () {
  var LABELS = JSON.parse(document.getElementById('labels').textContent);
  var FINAL = {paid: 1, closed: 1, expired: 1, failed: 1};
  var box = document.getElementById('status');
  var pay = document.getElementById('wx-pay');
  if (pay) pay.addEventListener('click', function () {
    var params = JSON.parse(document.getElementById('jsapi-data').textContent);
    if (typeof window.WeixinJSBridge !== 'undefined') {
      window.WeixinJSBridge.invoke('getBrandWCPayRequest', params, function () {});
    } else {
      document.getElementById('wx-note').hidden = false;
    }
  });
  if (!box) return;
  var every = parseInt(box.getAttribute('data-poll-ms'), 10) || 1500;
  function show(state) {
    document.body.setAttribute('data-state', state);
    box.setAttribute('data-state', state);
    box.textContent = LABELS[state] || state;
  }
  function poll() {
    fetch(box.getAttribute('data-url'), {cache: 'no-store', headers: {Accept: 'application/json'}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (s && s.state) show(s.state);
        if (!(s && FINAL[s.state])) setTimeout(poll, every);
      }, function () { setTimeout(poll, every * 2); });
  }
  document.body.setAttribute('data-state', box.getAttribute('data-state'));
  if (!FINAL[box.getAttribute('data-state')]) setTimeout(poll, every);
})();
