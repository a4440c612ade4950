// SPDX-License-Identifier: MIT
//
// k8s-validate.js DIR UNIT - check the manifests of DIR (deploy/kubernetes)
// offline: every object against the Kubernetes OpenAPI schema of its kind
// (the npm package kubernetes-models), the objects against each other and
// against loopfastd's settings, the DaemonSet's capabilities against the
// systemd unit UNIT, and that the validator rejects broken copies.
// Run by scripts/k8s-validate.sh, which installs the packages and sets
// NODE_PATH. Prints one "ok   WHAT" or "FAIL WHAT" line per check.
"use strict";

const fs = require("fs");
const path = require("path");
const yaml = require("js-yaml");

const [dir, unit] = process.argv.slice(2);
let failures = 0;

function report(ok, what, why) {
	if (!ok)
		failures++;
	console.log((ok ? "ok   " : "FAIL ") + what + (ok || !why ? "" : ": " + why));
}

// The model class of an object: apps/v1 DaemonSet -> kubernetes-models/apps/v1/DaemonSet.
function modelOf(obj) {
	const mod = require(`kubernetes-models/${obj.apiVersion}/${obj.kind}`);
	return mod[obj.kind];
}

// null when obj is valid, else the validator's message.
function invalid(obj) {
	try {
		new (modelOf(obj))(obj).validate();
		return null;
	} catch (e) {
		return e.message.split("\n")[0];
	}
}

function loadObjects() {
	const objs = [];
	const kust = yaml.load(fs.readFileSync(path.join(dir, "kustomization.yaml"), "utf8"));
	const files = fs.readdirSync(dir).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").sort();

	report(JSON.stringify([...kust.resources].sort()) === JSON.stringify(files),
		"kustomization.yaml lists every manifest (" + files.join(", ") + ")",
		"it lists " + kust.resources.join(", "));
	for (const f of files) {
		for (const obj of yaml.loadAll(fs.readFileSync(path.join(dir, f), "utf8"))) {
			if (!obj)
				continue;
			obj._file = f;
			objs.push(obj);
		}
	}
	return objs;
}

function validateAll(objs) {
	for (const obj of objs) {
		const { _file, ...plain } = obj;
		const err = invalid(plain);
		report(!err, `${_file}: ${obj.kind} ${obj.metadata.namespace}/${obj.metadata.name} matches the schema`, err);
	}
}

// The `key = value` lines of loopfastd.conf.
function confOf(cm) {
	const conf = {};
	for (const line of cm.data["loopfastd.conf"].split("\n")) {
		const m = line.match(/^\s*([a-z-]+)\s*=\s*(.*?)\s*$/);
		if (m)
			conf[m[1]] = m[2];
	}
	return conf;
}

// The capabilities the systemd unit holds loopfastd to.
function unitCaps() {
	const m = fs.readFileSync(unit, "utf8").match(/^CapabilityBoundingSet=(.*)$/m);
	return m[1].trim().split(/\s+/).map((c) => c.replace(/^CAP_/, "")).sort();
}

function mountOf(ctr, volumes, at) {
	const vm = ctr.volumeMounts.find((m) => at === m.mountPath || at.startsWith(m.mountPath + "/"));
	return vm && volumes.find((v) => v.name === vm.name);
}

function crossCheck(objs) {
	const ds = objs.find((o) => o.kind === "DaemonSet");
	const sa = objs.find((o) => o.kind === "ServiceAccount");
	const cm = objs.find((o) => o.kind === "ConfigMap");
	if (!ds || !sa || !cm) {
		report(false, "a DaemonSet, a ServiceAccount and a ConfigMap", "missing");
		return;
	}
	const pod = ds.spec.template.spec;
	const ctr = pod.containers[0];
	const sc = ctr.securityContext;
	const conf = confOf(cm);
	const ns = ds.metadata.namespace;
	const sel = ds.spec.selector.matchLabels;
	const labels = ds.spec.template.metadata.labels;
	const ann = ds.spec.template.metadata.annotations;
	const port = (conf["metrics-listen"] || "").replace(/^.*:/, "");
	const cmVol = pod.volumes.find((v) => v.configMap);

	report(Object.keys(sel).every((k) => labels[k] === sel[k]), "the selector matches the pod template's labels");
	report(pod.serviceAccountName === sa.metadata.name && sa.metadata.namespace === ns,
		"the pod runs as the ServiceAccount, in the same namespace");
	report(sa.automountServiceAccountToken === false && pod.automountServiceAccountToken === false,
		"no API token is mounted");
	report(cmVol && cmVol.configMap.name === cm.metadata.name && cm.metadata.namespace === ns &&
		"loopfastd.conf" in cm.data, "the config volume is the ConfigMap's loopfastd.conf");
	report(JSON.stringify([...sc.capabilities.add].sort()) === JSON.stringify(unitCaps()) &&
		JSON.stringify(sc.capabilities.drop) === '["ALL"]',
		"capabilities: all dropped but the systemd unit's " + unitCaps().join(", "));
	report(sc.privileged === false && sc.allowPrivilegeEscalation === false &&
		sc.readOnlyRootFilesystem === true && sc.runAsUser === 0,
		"not privileged, no privilege escalation, read-only root, uid 0");
	report(JSON.stringify(ctr.readinessProbe.exec.command) === '["loopfastctl","status"]',
		"the readiness probe runs loopfastctl status");
	report(port !== "" && ctr.ports.some((p) => String(p.containerPort) === port) &&
		ann["prometheus.io/port"] === port && ann["prometheus.io/scrape"] === "true",
		`metrics-listen's port ${port} is the containerPort and the prometheus.io/port annotation`);
	report(pod.hostNetwork === true, "the node's network namespace (hostNetwork)");
	for (const [key, host] of [["pin-dir", "/sys/fs/bpf"], ["cgroup", "/sys/fs/cgroup"],
		["socket", "/run/loopfast"]]) {
		const vol = conf[key] && mountOf(ctr, pod.volumes, conf[key]);
		report(vol && vol.hostPath && vol.hostPath.path === host,
			`${key} ${conf[key]} is on the node's ${host} (hostPath)`);
	}
	report(Number.isInteger(pod.terminationGracePeriodSeconds) && pod.terminationGracePeriodSeconds <= 30,
		`terminationGracePeriodSeconds is set (${pod.terminationGracePeriodSeconds})`);
}

// Broken copies of the manifests the validator must reject.
function brokenCopies(objs) {
	const copy = (kind) => JSON.parse(JSON.stringify(objs.find((o) => o.kind === kind), (k, v) => k === "_file" ? undefined : v));
	const cases = [
		["a containerPort given as a string", "DaemonSet", (o) => {
			o.spec.template.spec.containers[0].ports[0].containerPort = "9478";
		}],
		["a container without its required name", "DaemonSet", (o) => {
			delete o.spec.template.spec.containers[0].name;
		}],
		["a DaemonSet without its required selector", "DaemonSet", (o) => {
			delete o.spec.selector;
		}],
		["an AppArmor profile type that is not one of the enum's", "DaemonSet", (o) => {
			o.spec.template.spec.containers[0].securityContext.appArmorProfile.type = "unconfined";
		}],
		["capabilities.add as a string, not a list", "DaemonSet", (o) => {
			o.spec.template.spec.containers[0].securityContext.capabilities.add = "BPF";
		}],
		["a ConfigMap value that is a number", "ConfigMap", (o) => {
			o.data["loopfastd.conf"] = 1;
		}],
		["automountServiceAccountToken as a string", "ServiceAccount", (o) => {
			o.automountServiceAccountToken = "false";
		}],
	];
	for (const [what, kind, breakIt] of cases) {
		const o = copy(kind);
		breakIt(o);
		const err = invalid(o);
		report(err !== null, `rejected: ${what}` + (err ? ` (${err})` : ""), "the validator accepted it");
	}
}

const objs = loadObjects();
validateAll(objs);
crossCheck(objs);
brokenCopies(objs);
process.exit(failures ? 1 : 0);
