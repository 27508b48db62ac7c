// Reads a JSON array of requests on stdin, writes one result per request on stdout.
// Each request: {policies: [{name, policy}], principal, action, resource, account_id, context}.
// Strict mode: a context key the request does not carry is absent, as in AWS.
import { runSimulation } from "@cloud-copilot/iam-simulate";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const requests = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = [];
for (const r of requests) {
  const outcome = await runSimulation(
    {
      request: {
        principal: r.principal,
        action: r.action,
        resource: { resource: r.resource, accountId: r.account_id },
        contextVariables: r.context ?? {},
      },
      identityPolicies: r.policies,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
    },
    { simulationMode: "Strict" },
  );
  results.push({
    result: outcome.resultType === "error" ? "Error" : outcome.overallResult,
    errors: outcome.resultType === "error" ? outcome.errors : undefined,
    ignoredContextKeys:
      outcome.resultType === "single" ? outcome.result.ignoredContextKeys : undefined,
  });
}
process.stdout.write(JSON.stringify(results));
