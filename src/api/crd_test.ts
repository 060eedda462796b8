import assert from "node:assert/strict";
import { load } from "js-yaml";
import { crdObject, crdYaml, toStructuralSchema } from "./crd.ts";

Deno.test("deploy/crd.yaml is what the schema generates (deno task crd updates it)", async () => {
  const committed = await Deno.readTextFile(new URL("../../deploy/crd.yaml", import.meta.url));
  assert.equal(
    committed,
    crdYaml(),
    "deploy/crd.yaml drifted from src/api/schema.ts: run `deno task crd` and commit the result",
  );
});

Deno.test("the YAML parses back to crdObject()", () => {
  assert.deepEqual(load(crdYaml()), crdObject());
});

type Node = Record<string, unknown>;

function walk(node: Node, path: string, visit: (n: Node, path: string) => void): void {
  visit(node, path);
  for (const [name, child] of Object.entries((node.properties ?? {}) as Record<string, Node>)) {
    walk(child, `${path}.${name}`, visit);
  }
  if (node.items) walk(node.items as Node, `${path}[]`, visit);
  if (typeof node.additionalProperties === "object") {
    walk(node.additionalProperties as Node, `${path}{}`, visit);
  }
}

const schemaOf = () => {
  const spec = crdObject().spec as Node;
  const version = (spec.versions as Node[])[0];
  return (version.schema as Node).openAPIV3Schema as Node;
};

Deno.test("the CRD schema is structural: typed nodes, no refs, combinators or additionalProperties:false", () => {
  walk(schemaOf(), "", (n, path) => {
    assert.ok(
      n.type !== undefined || n["x-kubernetes-preserve-unknown-fields"] === true,
      `${path} has no type`,
    );
    for (const banned of ["$ref", "$schema", "anyOf", "oneOf", "allOf", "not", "$defs"]) {
      assert.ok(!(banned in n), `${path} has ${banned}`);
    }
    assert.notEqual(n.additionalProperties, false, `${path}: additionalProperties:false`);
    assert.ok(n.maximum !== Number.MAX_SAFE_INTEGER, `${path}: zod's safe-integer bound leaked`);
  });
});

Deno.test("the CRD carries the API's defaults, CEL rules, status subresource and columns", () => {
  const crd = crdObject();
  const spec = crd.spec as Node;
  assert.equal((crd.metadata as Node).name, "imagesyncs.portager.portager.io");
  assert.deepEqual((spec.names as Node).shortNames, ["isync"]);
  const version = (spec.versions as Node[])[0];
  assert.deepEqual(version.subresources, { status: {} });
  const columns = (version.additionalPrinterColumns as Node[]).map((c) => c.name);
  for (const c of ["Status", "Synced", "Failed", "Schedule", "Next Sync", "Age"]) {
    assert.ok(columns.includes(c), c);
  }
  // the default columns are upstream's, in its order; ours (Ready, Next Sync) only under -o wide
  const shown = (version.additionalPrinterColumns as Node[]).filter((c) => !c.priority).map((c) => c.name);
  assert.deepEqual(shown, ["Status", "Synced", "Failed", "Schedule", "Age"]);
  // upstream's STATUS column is the Ready condition's reason: scripts parse it
  const status = (version.additionalPrinterColumns as Node[]).find((c) => c.name === "Status");
  assert.equal(status?.jsonPath, '.status.conditions[?(@.type=="Ready")].reason');

  const props = (n: Node) => n.properties as Record<string, Node>;
  const root = schemaOf();
  const specSchema = props(root).spec;
  const image = (props(specSchema).images.items) as Node;
  assert.equal(props(image).maxTags.default, 10);
  assert.equal(props(image).maxTags.minimum, 0);
  assert.equal(props(specSchema).images.minItems, 1);
  const rules = (n: Node) => ((n["x-kubernetes-validations"] ?? []) as Node[]).map((r) => r.message);
  assert.deepEqual(rules(image), ["needs tags or semver"]);
  const destination = props(specSchema).destination;
  // upstream's own sample: method secret with no secretRef is anonymous, not refused
  assert.deepEqual(rules(props(destination).auth), []);
  assert.match(String(rules(props(destination).registry)[0]), /scheme/);
  assert.match(String(rules(props(props(specSchema).source).registry)[0]), /scheme/);
  assert.deepEqual(props(props(destination).auth).method.enum, ["secret", "ecr", "gar", "anonymous"]);
  // Permissive where upstream is: the validation gates keep fields we do not know yet.
  assert.equal(props(specSchema).validation["x-kubernetes-preserve-unknown-fields"], true);
  const conditions = props(props(root).status).conditions;
  assert.equal(conditions["x-kubernetes-list-type"], "map");
});

Deno.test("toStructuralSchema refuses what Kubernetes cannot express", () => {
  assert.throws(() => toStructuralSchema({ anyOf: [{ type: "string" }, { type: "integer" }] }), /anyOf/);
  assert.throws(() => toStructuralSchema({ type: "object", properties: { x: {} } }), /needs a type/);
  assert.deepEqual(toStructuralSchema({ type: "object", additionalProperties: {} }), {
    type: "object",
    "x-kubernetes-preserve-unknown-fields": true,
  });
  assert.deepEqual(toStructuralSchema({ type: "string", const: "a" }), { type: "string", enum: ["a"] });
});
