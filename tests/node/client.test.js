// The npm package `mlflow` (an independent MLflow client, not ours) against a running Cairn server.
// Run by tests/e2e/test_node_client.py with MLFLOW_URL and MLFLOW_TOKEN set.
const test = require('node:test');
const assert = require('node:assert');
const MLflow = require('mlflow');

const client = new MLflow({endpoint: process.env.MLFLOW_URL, headers: {Authorization: `Bearer ${process.env.MLFLOW_TOKEN}`}});
const {Experiments, Runs, Metrics} = client;

test('experiments, runs, metrics, params and tags round-trip', async () => {
  const {experiment_id} = await Experiments.create({name: 'node-exp'});
  assert.match(experiment_id, /^[0-9]+$/);
  const {experiment} = await Experiments.get({experiment_id});
  assert.strictEqual(experiment.name, 'node-exp');
  const {run} = await Runs.create({experiment_id, start_time: Date.now(), tags: [{key: 'who', value: 'node'}]});
  const run_id = run.info.run_id;
  for (let step = 0; step < 3; step++) {
    await Runs.logMetric({run_id, key: 'loss', value: 1 / (step + 1), timestamp: Date.now(), step});
  }
  await Runs.logParameter({run_id, key: 'lr', value: '0.01'});
  await Runs.setTag({run_id, key: 'stage', value: 'test'});
  await Runs.logBatch({run_id, metrics: [{key: 'acc', value: 0.75, timestamp: Date.now(), step: 0}], params: [], tags: []});
  const {metrics} = await Metrics.getHistory({run_id, metric_key: 'loss'});
  assert.deepStrictEqual(metrics.map((m) => m.step), [0, 1, 2]);
  const got = await Runs.get({run_id});
  const params = Object.fromEntries(got.run.data.params.map((p) => [p.key, p.value]));
  assert.strictEqual(params.lr, '0.01');
  await Runs.update({run_id, status: 'FINISHED', end_time: Date.now()});
  const {runs} = await Runs.search({experiment_ids: [experiment_id], filter: "params.lr = '0.01'"});
  assert.strictEqual(runs.length, 1);
  assert.strictEqual(runs[0].info.status, 'FINISHED');
  await Runs.delete({run_id});
  const after = await Runs.search({experiment_ids: [experiment_id]});
  assert.strictEqual((after.runs || []).length, 0);
});

test('errors come back as MLflow error bodies', async () => {
  await assert.rejects(Runs.get({run_id: 'does-not-exist'}));
});
