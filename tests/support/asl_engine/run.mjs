// The second ASL engine (aws-local-stepfunctions) running scripted scenarios: each Task answers from its script,
// in order; Wait states and Retry pauses take no time. stdin: a JSON list of {definition, input, context, script};
// stdout: one JSON list of {events, status, output, error}.

// The engine's release asks for Node 22; on Node 20 this is the one thing missing.
if (!Promise.withResolvers) {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
const { StateMachine } = await import('aws-local-stepfunctions');

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

function scripted(script, name, answered) {
  return async () => {
    answered[name] = (answered[name] ?? -1) + 1;
    const step = (script[name] || [])[answered[name]];
    if (!step) throw Object.assign(new Error(`no answer ${answered[name]} scripted for ${name}`), { name: 'ScriptEnded' });
    if (step.delay_ms) await sleep(step.delay_ms);
    if (step.error) throw Object.assign(new Error(step.cause || step.error), { name: step.error });
    return step.output;
  };
}

async function run({ definition, input, context, script }) {
  const answered = {};
  const handlers = {};
  const waits = {};
  const retries = {};
  for (const [name, state] of Object.entries(definition.States)) {
    if (state.Type === 'Wait') waits[name] = 0;
    if (state.Type === 'Task') {
      retries[name] = 0;
      handlers[name] = scripted(script, name, answered);
    }
  }
  const machine = new StateMachine(definition, { validationOptions: { checkArn: false } });
  const execution = machine.run(input, {
    overrides: { taskResourceLocalHandlers: handlers, waitTimeOverrides: waits, retryIntervalOverrides: retries },
    context,
  });
  const events = [];
  const logged = (async () => {
    for await (const event of execution.eventLogs) {
      events.push(event.state ? [event.type, event.state.name] : [event.type]);
    }
  })();
  const outcome = { status: 'SUCCEEDED', output: null, error: null };
  try {
    outcome.output = await execution.result;
  } catch (error) {
    if (error.name === 'ExecutionTimeoutError') {
      outcome.status = 'TIMED_OUT'; // a status, as DescribeExecution gives it: no state's error
    } else {
      outcome.status = 'FAILED';
      const failure = error.name === 'ExecutionError' && error.cause ? error.cause : error; // the state's own
      outcome.error = { name: failure.name, message: failure.message };
    }
  }
  await logged;
  return { events, ...outcome };
}

let text = '';
for await (const chunk of process.stdin) text += chunk;
const outcomes = [];
for (const scenario of JSON.parse(text)) outcomes.push(await run(scenario));
process.stdout.write(`${JSON.stringify(outcomes)}\n`);
