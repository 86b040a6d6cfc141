// Calls the app's own serverless handler (api/main.js) and shows its answer.
fetch('/api/hello?name=browser')
  .then((response) => response.json())
  .then((data) => {
    // `visits` is counted in the app's kv store: it survives restarts and redeploys.
    document.getElementById('api-result').textContent = `${data.message} (visit ${data.visits})`;
  })
  .catch((error) => { document.getElementById('api-result').textContent = `failed: ${error}`; });
