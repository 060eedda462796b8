/**
 * The ImageSync CustomResourceDefinition, generated from the zod schema: `z.toJSONSchema`
 * converted to the structural subset Kubernetes accepts (no `$schema`/`$ref`, no
 * `additionalProperties: false`, `x-kubernetes-preserve-unknown-fields` where the schema is
 * permissive), plus the status subresource, printer columns and CEL rules.
 * @module
 */
import * as z from "zod/mini";
import { dump } from "js-yaml";
import { GROUP, ImageSyncSpecSchema, ImageSyncStatusSchema, KIND, PLURAL, VERSION } from "./schema.ts";

/** A JSON-schema node as produced by zod and consumed by Kubernetes. */
type SchemaNode = Record<string, unknown>;

const SAFE_INT = Number.MAX_SAFE_INTEGER;

/**
 * Converts a zod-generated JSON schema (OpenAPI 3.0 flavour) to a Kubernetes structural schema.
 * Throws when the schema uses a construct Kubernetes cannot express, so drift is caught here.
 */
export function toStructuralSchema(node: SchemaNode, path = "openAPIV3Schema"): SchemaNode {
  const out: SchemaNode = {};
  for (const [key, value] of Object.entries(node)) {
    switch (key) {
      case "$schema":
      case "$id":
      case "id":
        break;
      case "$ref":
      case "$defs":
      case "definitions":
      case "anyOf":
      case "oneOf":
      case "allOf":
      case "not":
        throw new Error(`${path}: "${key}" cannot be expressed in a structural CRD schema`);
      case "const":
        out.enum = [value];
        break;
      case "additionalProperties":
        if (value === false) break;
        if (value === true || (typeof value === "object" && value && Object.keys(value).length === 0)) {
          out["x-kubernetes-preserve-unknown-fields"] = true;
        } else {
          out.additionalProperties = toStructuralSchema(value as SchemaNode, `${path}.additionalProperties`);
        }
        break;
      case "properties": {
        const props: SchemaNode = {};
        for (const [name, child] of Object.entries(value as Record<string, SchemaNode>)) {
          props[name] = toStructuralSchema(child, `${path}.${name}`);
        }
        out.properties = props;
        break;
      }
      case "items":
        out.items = toStructuralSchema(value as SchemaNode, `${path}[]`);
        break;
      case "minimum":
        if (value !== -SAFE_INT) out.minimum = value;
        break;
      case "maximum":
        if (value !== SAFE_INT) out.maximum = value;
        break;
      case "pattern":
        // zod's date-time regex is for its own parser; the apiserver checks the format.
        if (node.format !== "date-time") out.pattern = value;
        break;
      default:
        out[key] = value;
    }
  }
  if (out.type === undefined && !out["x-kubernetes-preserve-unknown-fields"]) {
    throw new Error(`${path}: every node of a structural schema needs a type`);
  }
  return out;
}

function jsonSchemaOf(schema: z.core.$ZodType): SchemaNode {
  return z.toJSONSchema(schema, {
    io: "input",
    target: "openapi-3.0",
    unrepresentable: "throw",
  }) as SchemaNode;
}

/** The printer columns `kubectl get imagesyncs` shows. */
export const PRINTER_COLUMNS = [
  // STATUS is the Ready condition's reason (SyncSucceeded, SyncFailed, AuthFailed, …), as
  // upstream prints it: scripts parse it.
  {
    name: "Status",
    type: "string",
    description: "Reason of the Ready condition",
    jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
  },
  {
    name: "Ready",
    type: "string",
    description: "Status of the Ready condition",
    jsonPath: '.status.conditions[?(@.type=="Ready")].status',
    priority: 1,
  },
  { name: "Synced", type: "integer", description: "Image tags in sync", jsonPath: ".status.syncedImages" },
  {
    name: "Failed",
    type: "integer",
    description: "Image tags that failed",
    jsonPath: ".status.failedImages",
  },
  { name: "Schedule", type: "string", description: "Sync schedule", jsonPath: ".spec.schedule" },
  // A "date" column would print "<invalid>" for a time in the future, so show the timestamp.
  {
    name: "Next Sync",
    type: "string",
    description: "When the next sync is due",
    jsonPath: ".status.nextSyncTime",
    // -o wide only: the default columns are upstream's, in its order (scripts cut by position)
    priority: 1,
  },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
];

/** The CRD as an object, ready to apply (`apiextensions.k8s.io/v1`). */
export function crdObject(): Record<string, unknown> {
  const openAPIV3Schema: SchemaNode = {
    description: "ImageSync keeps images and tags of a source registry copied to a destination registry " +
      "on a schedule.",
    type: "object",
    required: ["spec"],
    properties: {
      apiVersion: {
        type: "string",
        description: "APIVersion of this object: portager.portager.io/v1alpha1.",
      },
      kind: { type: "string", description: "Kind of this object: ImageSync." },
      metadata: { type: "object" },
      spec: toStructuralSchema(jsonSchemaOf(ImageSyncSpecSchema), "spec"),
      status: toStructuralSchema(jsonSchemaOf(ImageSyncStatusSchema), "status"),
    },
  };
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${PLURAL}.${GROUP}`,
      labels: { "app.kubernetes.io/name": "portager", "app.kubernetes.io/component": "crd" },
    },
    spec: {
      group: GROUP,
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: KIND.toLowerCase(),
        shortNames: ["isync"],
        categories: ["portager"],
      },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: PRINTER_COLUMNS,
          schema: { openAPIV3Schema },
        },
      ],
    },
  };
}

/** The CRD as YAML, exactly what `deploy/crd.yaml` holds. */
export function crdYaml(): string {
  const header =
    "# Generated from src/api/schema.ts by `deno task crd` (portager crd --write). Do not edit.\n";
  return header + dump(crdObject(), { noRefs: true, lineWidth: 100, quotingType: '"' });
}
