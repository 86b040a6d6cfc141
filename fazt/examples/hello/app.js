// Calls the app's own serverless handler (api/main.js) and shows its answer.
fetch('/api/hello?name=browser')
  .then((response) => response.json())
  .then((data) => { document.getElementById('api-result').textContent = data.message; })
  .catch((error) => { document.getElementById('api-result').textContent = `failed: ${error}`; });
