// The serverless part of the example app: every request to /api/* on hello.<domain> runs
// this function in a locked-down JS worker. Try http://hello.localhost:8080/api/hello?name=you
//
// `caps` holds what manifest.json grants: here `kv` (the app's own key-value store, kept in
// the server's encrypted database), plus `log` and `budget`, which every handler gets.
const { greeting } = require('./greeting.js');

module.exports = async function (request, { kv, log, budget }) {
  const name = typeof request.query.name === 'string' ? request.query.name.slice(0, 100) : 'world';
  const visits = await kv.increment('visits');
  log.info(`greeting ${name} (visit ${visits})`);
  return {
    message: greeting(name),
    visits,
    method: request.method,
    path: request.path,
    requestId: request.requestId,
    msLeft: budget.remaining(),
  };
};
