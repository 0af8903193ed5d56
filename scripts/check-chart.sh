#!/usr/bin/env bash
# Checks the Helm chart (charts/raftcfg-operator) offline, without a cluster:
#   - its copy of the CRD equals the generated crds/raftcluster.yaml;
#   - `helm lint --strict` passes;
#   - it renders, cluster-wide and for one watched namespace, into the
#     expected objects, each valid against the Kubernetes API schemas
#     (kubernetes-validate --strict) for the oldest Kubernetes the chart
#     supports and the newest the validator knows;
#   - the values schema rejects a bad value;
#   - the CRD is a valid CustomResourceDefinition and the example parses.
# Needs helm and kubernetes-validate, looked up on PATH and then in
# $HOME/.cache/k8s-tools/bin (where ../shared/tools/install-k8s-tools puts
# them). Without them it says so and exits 0.
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
# produced and validates them.
check_rendering() {
    local what=$1 want_kinds=$2 manifests got_kinds
    shift 2
    manifests=$(helm template test "$chart" --namespace raftcfg-system "$@") ||
        fail "helm template failed for $what"
    got_kinds=$(kinds <<<"$manifests")
    [[ $got_kinds == "$want_kinds" ]] ||
        fail "$what renders [$got_kinds], expected [$want_kinds]"
    validate "$what" <<<"$manifests"
    echo "chart check: $what: ok ($got_kinds)"
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

# 4. The values schema is enforced.
if helm template test "$chart" --set replicaCount=0 >/dev/null 2>&1; then
    fail "values.schema.json accepted replicaCount=0"
fi
echo "chart check: values schema rejects replicaCount=0: ok"

# 5. The example is well-formed YAML. (Its fields can only be checked
#    against the CRD by an API server; the validator has no schema for
#    RaftCluster and, with --no-warn, only parses it.)
kubernetes-validate --quiet --no-warn "$example" >/dev/null ||
    fail "$example is not valid YAML"
echo "chart check: $example parses: ok"
