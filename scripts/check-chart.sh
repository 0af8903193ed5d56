#!/usr/bin/env bash
# Checks the Helm chart (charts/raftcfg-operator) offline, without a cluster:
#   - its copy of the CRD equals the generated crds/raftcluster.yaml;
#   - `helm lint --strict` passes;
#   - it renders, cluster-wide and for one watched namespace, with and
#     without a RaftCluster (cluster.create), into the expected objects, each
#     valid against the Kubernetes API schemas (kubernetes-validate --strict)
#     for the oldest Kubernetes the chart supports and the newest the
#     validator knows, and each RaftCluster against the CRD's schema;
#   - the values schema and the templates reject bad values;
#   - the CRD is a valid CustomResourceDefinition and the example a valid
#     RaftCluster.
# Needs helm and kubernetes-validate, looked up on PATH and then in
# $HOME/.cache/k8s-tools/bin (where ../shared/tools/install-k8s-tools puts
# them), and the validator's Python with its jsonschema and yaml modules.
# Without helm or the validator it says so and exits 0.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

chart=charts/raftcfg-operator
crd=crds/raftcluster.yaml
example=examples/raftcluster.yaml
# The chart's kubeVersion floor (Chart.yaml) and the validator's default.
kube_versions=(1.29.0 1.37.0)

have_tools() {
    command -v helm >/dev/null && command -v kubernetes-validate >/dev/null
}
if ! have_tools; then
    PATH="$HOME/.cache/k8s-tools/bin:$PATH"
    if ! have_tools; then
        echo "chart check skipped: helm/kubernetes-validate not on PATH (run ../shared/tools/install-k8s-tools)"
        exit 0
    fi
fi

fail() {
    echo "chart check: $*" >&2
    exit 1
}

# The validator's interpreter (from its shebang), which has the jsonschema
# and yaml modules.
read -r -a python <<<"$(sed -n '1s/^#! *//p' "$(command -v kubernetes-validate)")"
"${python[@]}" -c 'import jsonschema, yaml' 2>/dev/null ||
    fail "kubernetes-validate's Python (${python[*]}) lacks the jsonschema or yaml module"

# Reads manifests on stdin and checks every RaftCluster among them against
# the CRD's openAPIV3Schema (draft 7, which ignores the x-kubernetes-*
# extensions, CEL rules included, and formats), made as strict as the API
# server: `nullable` allows null, and an object with properties takes no
# others (the API server drops unknown fields). Prints the other documents,
# unchanged, for kubernetes-validate, which has no schema for RaftCluster.
# With --summary it prints, instead, one line per RaftCluster:
# `<namespace>/<name> <spec as compact JSON, keys sorted>`. (Python reads
# the program on stdin, so the manifests come on fd 3.)
raftclusters() {
    "${python[@]}" - "$crd" "$@" 3<&0 <<'PYTHON'
import json, os, re, sys
import jsonschema, yaml

crd = yaml.safe_load(open(sys.argv[1]))
summary = "--summary" in sys.argv[2:]
version = crd["spec"]["versions"][0]
api_version = "%s/%s" % (crd["spec"]["group"], version["name"])
kind = crd["spec"]["names"]["kind"]


def strict(schema):
    if not isinstance(schema, dict):
        return schema
    schema = {key: strict(value) if key in ("items", "additionalProperties", "not") else value
              for key, value in schema.items()}
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            schema[key] = [strict(s) for s in schema[key]]
    if "properties" in schema:
        schema["properties"] = {name: strict(s) for name, s in schema["properties"].items()}
        schema.setdefault("additionalProperties", False)
    if schema.get("nullable") and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    return schema


schema = strict(version["schema"]["openAPIV3Schema"])
schema["properties"].update({
    "apiVersion": {"const": api_version},
    "kind": {"const": kind},
    "metadata": {"type": "object"},
})
schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
validator = jsonschema.Draft7Validator(schema)

errors, others = [], []
text = os.fdopen(3).read()
for document in re.split(r"^---[ \t]*$", text, flags=re.M):
    parsed = yaml.safe_load(document)
    if not isinstance(parsed, dict) or parsed.get("kind") != kind:
        if parsed is not None:
            others.append(document.strip("\n"))
        continue
    meta = parsed.get("metadata") or {}
    where = "%s/%s" % (meta.get("namespace"), meta.get("name"))
    for error in validator.iter_errors(parsed):
        path = ".".join(str(p) for p in error.absolute_path) or "(root)"
        errors.append("%s %s: %s: %s" % (kind, where, path, error.message))
    if summary:
        print(where, json.dumps(parsed.get("spec"), sort_keys=True, separators=(",", ":")))
if errors:
    sys.exit("\n".join(errors))
if not summary:
    print("\n---\n".join(others))
PYTHON
}

# Validates the manifests on stdin against each Kubernetes version. Any
# output is a failure: with --quiet the validator prints only errors and
# warnings, and a warning means a kind it has no schema for (a misspelt kind
# or apiVersion), which it would let pass. It reads stdin only once, hence
# one run per version.
validate() {
    local what=$1 manifests version report
    manifests=$(cat)
    for version in "${kube_versions[@]}"; do
        if ! report=$(kubernetes-validate --strict --quiet -k "$version" - <<<"$manifests") || [[ -n $report ]]; then
            echo "$report" >&2
            fail "$what does not validate against Kubernetes $version"
        fi
    done
}

# The kinds in a rendering, sorted, on one line.
kinds() {
    sed -n 's/^kind: //p' | sort | tr '\n' ' ' | sed 's/ $//'
}

# Renders the chart with the given extra arguments, checks the kinds it
# produced and validates them: RaftClusters against the CRD, the rest
# against Kubernetes.
check_rendering() {
    local what=$1 want_kinds=$2 manifests got_kinds others
    shift 2
    manifests=$(helm template test "$chart" --namespace raftcfg-system "$@") ||
        fail "helm template failed for $what"
    got_kinds=$(kinds <<<"$manifests")
    [[ $got_kinds == "$want_kinds" ]] ||
        fail "$what renders [$got_kinds], expected [$want_kinds]"
    others=$(raftclusters <<<"$manifests") ||
        fail "$what renders a RaftCluster that does not validate against $crd"
    validate "$what" <<<"$others"
    echo "chart check: $what: ok ($got_kinds)"
}

# Renders the chart's RaftCluster with the given extra arguments and checks
# its namespace, name and spec (see raftclusters --summary).
check_cluster() {
    local what=$1 want=$2 manifests got
    shift 2
    manifests=$(helm template test "$chart" --namespace raftcfg-system \
        --show-only templates/raftcluster.yaml --set cluster.create=true "$@") ||
        fail "helm template failed for $what"
    got=$(raftclusters --summary <<<"$manifests") ||
        fail "$what renders a RaftCluster that does not validate against $crd"
    [[ $got == "$want" ]] || fail "$what renders
  $got
expected
  $want"
    echo "chart check: $what: ok ($got)"
}

# Checks that helm refuses to render the chart with the given extra
# arguments, saying something that matches the extended regex `why` (for
# the values schema: the value's path, which Helm 3 spells a.b and Helm 4
# /a/b).
check_rejected() {
    local what=$1 why=$2 report
    shift 2
    if report=$(helm template test "$chart" "$@" 2>&1 >/dev/null); then
        fail "the chart accepted $what"
    fi
    grep -Eq -- "$why" <<<"$report" ||
        { echo "$report" >&2; fail "the chart rejected $what, but not for matching /$why/"; }
    echo "chart check: rejects $what: ok"
}

# 1. The chart installs the CRD from its crds/ folder; it must be the
#    generated one.
[[ -f $crd ]] || fail "$crd is missing; run \`make crds\`"
cmp -s "$crd" "$chart/$crd" ||
    fail "$chart/$crd differs from $crd; run \`make crds\` to copy the generated CRD into the chart"
validate "$crd" <"$crd"
echo "chart check: $crd: ok"

# 2. Lint, in both RBAC modes.
helm lint --strict --quiet "$chart" >/dev/null || { helm lint --strict "$chart" >&2; fail "helm lint failed"; }
helm lint --strict --quiet "$chart" --set watchNamespace=team-a >/dev/null ||
    { helm lint --strict "$chart" --set watchNamespace=team-a >&2; fail "helm lint failed (watchNamespace=team-a)"; }
echo "chart check: helm lint --strict: ok"

# 3. Render and validate: cluster-wide RBAC by default, namespaced RBAC
#    (plus the release namespace's leader-election Role) with watchNamespace.
check_rendering "default values" \
    "ClusterRole ClusterRoleBinding Deployment Role RoleBinding Service ServiceAccount"
check_rendering "watchNamespace=team-a, replicaCount=2" \
    "Deployment Role Role RoleBinding RoleBinding Service ServiceAccount" \
    --set watchNamespace=team-a --set replicaCount=2
# With a RaftCluster: the operator's own CA by default; cert-manager with
# an issuerRef, in the watched namespace.
check_rendering "cluster.create=true" \
    "ClusterRole ClusterRoleBinding Deployment RaftCluster Role RoleBinding Service ServiceAccount" \
    --set cluster.create=true
check_rendering "cluster.create=true, watchNamespace=team-a, cluster.tls.issuerRef" \
    "Deployment RaftCluster Role Role RoleBinding RoleBinding Service ServiceAccount" \
    --set cluster.create=true --set watchNamespace=team-a \
    --set cluster.tls.issuerRef.name=company-ca --set cluster.tls.issuerRef.kind=ClusterIssuer
app_version=$(helm show chart "$chart" | sed -n 's/^appVersion: *//p' | tr -d "\"'")
check_cluster "RaftCluster from default values" \
    "raftcfg-system/config {\"auth\":{\"enabled\":true},\"image\":\"ghcr.io/raftcfg/raftcfg:$app_version\",\"recovery\":{\"gracePeriodSeconds\":300,\"quorumLoss\":\"Manual\"},\"replicas\":3,\"storage\":{\"size\":\"1Gi\"},\"tls\":{\"enabled\":true}}"
check_cluster "RaftCluster with every value set" \
    'team-a/store {"auth":{"enabled":false},"engine":{"blockCacheBytes":134217728,"memtablesBytes":268435456,"walFileBytes":0},"image":"example.com/raftcfg:1","recovery":{"gracePeriodSeconds":60,"quorumLoss":"Automatic"},"replicas":5,"resources":{"limits":{"memory":"1Gi"},"requests":{"cpu":"100m","memory":"512Mi"}},"storage":{"size":"10Gi","storageClassName":"fast-ssd"},"tls":{"enabled":true,"issuerRef":{"group":"cert-manager.io","kind":"Issuer","name":"team-ca"}}}' \
    --set watchNamespace=team-a --set cluster.namespace=team-a --set cluster.name=store \
    --set cluster.replicas=5 --set cluster.image=example.com/raftcfg:1 \
    --set cluster.resources.limits.memory=1Gi --set cluster.resources.requests.cpu=100m \
    --set cluster.resources.requests.memory=512Mi \
    --set cluster.engine.memtablesBytes=268435456 --set cluster.engine.blockCacheBytes=134217728 \
    --set cluster.engine.walFileBytes=0 \
    --set cluster.storage.size=10Gi --set cluster.storage.storageClassName=fast-ssd \
    --set cluster.tls.issuerRef.name=team-ca --set cluster.tls.issuerRef.kind=Issuer \
    --set cluster.tls.issuerRef.group=cert-manager.io --set cluster.auth.enabled=false \
    --set cluster.recovery.quorumLoss=Automatic --set cluster.recovery.gracePeriodSeconds=60
# A values file gives numbers as floats; the engine's sizes must still be
# written as integers.
engine_values=$(mktemp)
trap 'rm -f "$engine_values"' EXIT
printf 'cluster:\n  engine:\n    memtablesBytes: 268435456\n' >"$engine_values"
check_cluster "RaftCluster with engine sizes from a values file" \
    "raftcfg-system/config {\"auth\":{\"enabled\":true},\"engine\":{\"memtablesBytes\":268435456},\"image\":\"ghcr.io/raftcfg/raftcfg:$app_version\",\"recovery\":{\"gracePeriodSeconds\":300,\"quorumLoss\":\"Manual\"},\"replicas\":3,\"storage\":{\"size\":\"1Gi\"},\"tls\":{\"enabled\":true}}" \
    -f "$engine_values"

# 4. The values schema and the templates refuse bad values.
check_rejected "replicaCount=0" "replicaCount" --set replicaCount=0
check_rejected "cluster.tls.issuerRef.kind=Nope" "cluster.tls.issuerRef.kind" \
    --set cluster.create=true --set cluster.tls.issuerRef.name=company-ca \
    --set cluster.tls.issuerRef.kind=Nope
check_rejected "cluster.replicas=10" "cluster.replicas" --set cluster.create=true --set cluster.replicas=10
check_rejected "cluster.engine.memtablesBytes=1024" "cluster.engine.memtablesBytes|/cluster/engine/memtablesBytes" \
    --set cluster.create=true --set cluster.engine.memtablesBytes=1024
check_rejected "cluster.engine.cacheBytes (no such field)" "cacheBytes" \
    --set cluster.create=true --set cluster.engine.cacheBytes=1048576
check_rejected "cluster.name=Config" "cluster.name" --set cluster.create=true --set cluster.name=Config
check_rejected "cluster.recovery.quorumLoss=Sometimes" "cluster.recovery.quorumLoss" \
    --set cluster.create=true --set cluster.recovery.quorumLoss=Sometimes
check_rejected "cluster.namespace other than watchNamespace" "is not watchNamespace" \
    --set cluster.create=true --set watchNamespace=team-a --set cluster.namespace=team-b
check_rejected "cluster.tls.issuerRef with cluster.tls.enabled=false" "tls.enabled is false" \
    --set cluster.create=true --set cluster.tls.enabled=false --set cluster.tls.issuerRef.name=company-ca

# 5. The example is a RaftCluster valid against the CRD's schema (its CEL
#    rules only an API server checks).
example_clusters=$(raftclusters --summary <"$example") ||
    fail "$example does not validate against $crd"
[[ -n $example_clusters ]] || fail "$example holds no RaftCluster"
echo "chart check: $example: ok"
