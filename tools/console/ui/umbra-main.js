// Start-up: ask for the user key, check it with the Console, then start
// Open MCT with Umbra's plugin and the live feed.
/* global openmct, UmbraApi, UmbraPlugin */
(function () {
  const form = document.getElementById('umbra-login');
  const input = document.getElementById('umbra-key');
  const problem = document.getElementById('umbra-login-error');
  const link = document.getElementById('umbra-link');

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    problem.textContent = '';
    const key = input.value.trim();
    input.value = ''; // the key lives in UmbraApi's closure only
    if (!key) {
      problem.textContent = 'Enter a user key.';
      return;
    }
    try {
      await UmbraApi.login(key);
    } catch (err) {
      problem.textContent =
        err.status === 401 ? 'Refused: this key is not a valid user key of this Console.' : 'Refused: ' + err.message;
      return;
    }
    form.remove();
    start(await UmbraApi.get('/api/ui/dictionary'));
  });

  function start(dictionary) {
    const THIRTY_MINUTES = 30 * 60 * 1000;
    openmct.setAssetPath('/ui/openmct');
    openmct.install(openmct.plugins.Espresso());
    openmct.install(openmct.plugins.UTCTimeSystem());
    openmct.install(
      openmct.plugins.Conductor({
        menuOptions: [
          { name: 'Realtime', timeSystem: 'utc', clock: 'local', clockOffsets: { start: -THIRTY_MINUTES, end: 30 * 1000 } },
          { name: 'Fixed', timeSystem: 'utc', bounds: { start: Date.now() - THIRTY_MINUTES, end: Date.now() } }
        ]
      })
    );
    openmct.install(UmbraPlugin(dictionary));
    const app = document.getElementById('umbra-app');
    app.hidden = false;
    openmct.start(app);
    link.hidden = false;
    const show = (state) => {
      link.textContent = 'Console link: ' + state;
      link.setAttribute('data-state', state);
    };
    show(UmbraApi.link);
    UmbraApi.on('link', show);
    UmbraApi.startStream();
    if (!window.location.hash || window.location.hash === '#/') {
      window.location.hash = '#/browse/umbra:root/umbra:deployments';
    }
  }
})();
