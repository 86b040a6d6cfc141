// The serverless part of the example app: every request to /api/* on hello.<domain> runs
// this function in a locked-down JS worker. Try http://hello.localhost:8080/api/hello?name=you
const { greeting } = require('./greeting.js');

module.exports = async function (request, { log, budget }) {
  const name = typeof request.query.name === 'string' ? request.query.name.slice(0, 100) : 'world';
  log.info(`greeting ${name}`);
  return {
    message: greeting(name),
    method: request.method,
    path: request.path,
    requestId: request.requestId,
    msLeft: budget.remaining(),
  };
};
