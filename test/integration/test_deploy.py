#!/usr/bin/env python3
"""test/integration/test_deploy.py — the deployment files say only what dotgate does.

Covers issue 17 "Kubernetes sidecar", "Observability", "systemd": every probe path, port, signal
and grace period in deploy/kubernetes/ (PyYAML), deploy/Dockerfile and deploy/systemd/ is one
that dotgate serves or honours — read from the manifests, then checked against a real dotgate
started with the ConfigMap's own config (GET each probe path, SIGTERM drains and exits 0); the
Dockerfile builds as .ci/run does and installs the libraries the binary links; the unit passes
`systemd-analyze verify` (with ExecStart pointed at the built binary, which is not installed
here) and dotgate speaks the sd_notify protocol it declares (READY=1 once listening,
RELOADING=1/READY=1 on SIGHUP, STOPPING=1 on SIGTERM, to a $NOTIFY_SOCKET the test binds); every
metric the Grafana dashboard and the Prometheus rules name is one a running dotgate exports
(scraped after a message, so its series exist), and `promtool check rules` passes (when the
prometheus package is installed: deploy/run-tests.sh installs it).
"""

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import yaml

from harness import IntegrationTest, LOOPBACK, dotgate_bin, free_port, main, wait_listening, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
K8S = os.path.join(DEPLOY, "kubernetes")
BODY = b"Subject: deploy\r\n\r\nhello\r\n"


def k8s_objects():
    objs = []
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    doc["_file"] = os.path.basename(path)
                    objs.append(doc)
    return objs


def find(objs, kind, name):
    for o in objs:
        if o.get("kind") == kind and o["metadata"]["name"] == name:
            return o
    raise AssertionError("no %s %s in deploy/kubernetes/" % (kind, name))


def container(deployment, name):
    for c in deployment["spec"]["template"]["spec"]["containers"]:
        if c["name"] == name:
            return c
    raise AssertionError("no container %s" % name)


def named_port(c, port):
    """A probe's or Service's port (a name or a number) as the container's port number."""
    if isinstance(port, int):
        return port
    for p in c.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    raise AssertionError("port %r is not one of %s's ports" % (port, c["name"]))


def dockerfile():
    with open(os.path.join(DEPLOY, "Dockerfile")) as f:
        text = f.read()
    joined = re.sub(r"\\\n", " ", text)  # continuation lines
    return [l.strip() for l in joined.splitlines() if l.strip() and not l.strip().startswith("#")]


def exported_names(metrics_text):
    """Every sample name a scrape holds, plus histogram series names from # TYPE."""
    names = set()
    for line in metrics_text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            names.add(m.group(1))
            if m.group(2) == "histogram":
                names.update(m.group(1) + s for s in ("_bucket", "_sum", "_count"))
        elif line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names


class DeployTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        self.objs = k8s_objects()
        self.deployment = find(self.objs, "Deployment", "dotgate")
        self.configmap = find(self.objs, "ConfigMap", "dotgate-config")
        self.config = json.loads(self.configmap["data"]["dotgate.json"])
        self.dg_container = container(self.deployment, "dotgate")

    # -- a real dotgate with the ConfigMap's config --------------------------------------------

    def start_configmap_dotgate(self, drain_grace=None, env=None):
        """dotgate with the ConfigMap's dotgate.json, its files from the ConfigMap, on loopback."""
        sink = self.sink()
        d = self.make_dir("etc-dotgate")
        text = self.configmap["data"]["dotgate.json"]
        for key, value in self.configmap["data"].items():
            if key != "dotgate.json":
                with open(os.path.join(d, key), "w") as f:
                    f.write(value)
        mount = self.config_mount()
        text = text.replace(mount + "/", d + "/").replace('"/var/spool/dotgate"', json.dumps(self.make_dir("spool")))
        config = json.loads(text)
        if drain_grace is not None:
            config["drain_grace"] = drain_grace
        path = os.path.join(d, "dotgate.json")
        with open(path, "w") as f:
            json.dump(config, f)
        port, admin = free_port(), free_port()
        # The pod's addresses (0.0.0.0, the MTA on 127.0.0.1:10026) become free loopback ports.
        proc = self.start_proc("dotgate", [dotgate_bin(), "--config", path, "--listen", "%s:%d" % (LOOPBACK, port),
                                           "--admin", "%s:%d" % (LOOPBACK, admin),
                                           "--downstream", "%s:%d" % (LOOPBACK, sink.port)],
                               env=dict(os.environ, **(env or {})))
        wait_listening(port, proc)
        wait_listening(admin, proc)
        return proc, port, admin, sink

    def http_get(self, port, path):
        import http.client
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def config_mount(self):
        spec = self.deployment["spec"]["template"]["spec"]
        vol = [v for v in spec["volumes"] if v.get("configMap", {}).get("name") == "dotgate-config"]
        self.assertEqual(len(vol), 1, "the ConfigMap is mounted once")
        mounts = [m for m in self.dg_container["volumeMounts"] if m["name"] == vol[0]["name"]]
        self.assertEqual(len(mounts), 1)
        return mounts[0]["mountPath"].rstrip("/")

    # -- Kubernetes ------------------------------------------------------------------------------

    def test_kubernetes_config_ports_and_probes_are_dotgates(self):
        args = self.dg_container["args"]
        config_path = args[args.index("--config") + 1]
        mount = self.config_mount()
        self.assertEqual(os.path.dirname(config_path), mount)
        self.assertIn(os.path.basename(config_path), self.configmap["data"])
        # Every file the config names under the mount is a key of the ConfigMap.
        for named in re.findall(re.escape(mount) + r"/([^\"]+)", self.configmap["data"]["dotgate.json"]):
            self.assertIn(named, self.configmap["data"], "config names %s/%s, not in the ConfigMap" % (mount, named))
        listener = self.config["listeners"][0]
        self.assertEqual(listener["address"], "0.0.0.0", "the Service reaches the pod IP")
        self.assertEqual(named_port(self.dg_container, "smtp"), listener["port"])
        self.assertEqual(self.config["admin"]["address"], "0.0.0.0", "the kubelet probes the pod IP")
        self.assertEqual(named_port(self.dg_container, "admin"), self.config["admin"]["port"])
        self.assertEqual((self.config["downstream"]["address"], self.config["downstream"]["port"]),
                         ("127.0.0.1", named_port(container(self.deployment, "mta"), "mta")),
                         "dotgate relays to the MTA container on the pod's loopback")
        probes = {}
        for kind in ("livenessProbe", "readinessProbe"):
            get = self.dg_container[kind]["httpGet"]
            self.assertEqual(named_port(self.dg_container, get["port"]), self.config["admin"]["port"], kind)
            probes[kind] = get["path"]
        self.assertEqual(probes, {"livenessProbe": "/healthz", "readinessProbe": "/readyz"})
        # The config passes --check-config, and a dotgate running it answers every probe path.
        proc, port, admin, sink = self.start_configmap_dotgate()
        for kind, path in probes.items():
            self.assertEqual(self.http_get(admin, path)[0], 200, "%s %s" % (kind, path))
        self.assertEqual(self.http_get(admin, "/no-such-probe")[0], 404)
        # The Service's ports reach the container's.
        svc = find(self.objs, "Service", "dotgate")
        self.assertEqual([named_port(self.dg_container, p["targetPort"]) for p in svc["spec"]["ports"]], [listener["port"]])
        self.assertEqual(svc["spec"]["ports"][0]["port"], 25)
        admin_svc = find(self.objs, "Service", "dotgate-admin")
        self.assertEqual(named_port(self.dg_container, admin_svc["spec"]["ports"][0]["targetPort"]), self.config["admin"]["port"])
        annotations = self.deployment["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(int(annotations["prometheus.io/port"]), self.config["admin"]["port"])
        self.assertEqual(self.http_get(admin, annotations["prometheus.io/path"])[0], 200)

    def test_kubernetes_grace_periods_match_the_drain(self):
        spec = self.deployment["spec"]["template"]["spec"]
        grace = spec["terminationGracePeriodSeconds"]
        drain = self.config.get("drain_grace", 30)
        pre = self.dg_container["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(pre[0], "/bin/sleep")
        pre_seconds = float(pre[1])
        self.assertGreaterEqual(grace, pre_seconds + drain + 5,
                                "terminationGracePeriodSeconds must cover the preStop sleep, drain_grace and a margin")
        # The MTA's preStop waits for dotgate's admin port to go, long enough for the whole drain.
        mta_pre = " ".join(container(self.deployment, "mta")["lifecycle"]["preStop"]["exec"]["command"])
        self.assertIn("127.0.0.1/%d" % self.config["admin"]["port"], mta_pre)
        bound = int(re.search(r"seq 1 (\d+)", mta_pre).group(1))
        self.assertGreaterEqual(bound, pre_seconds + drain)
        self.assertLessEqual(bound, grace)
        # Kubernetes (and docker stop, STOPSIGNAL) send SIGTERM: dotgate drains on it — /readyz
        # 503, a session still open gets 421 4.3.2 after drain_grace, exit 0. (drain_grace 2 here:
        # the contract, not the 30 s.)
        self.assertIn("STOPSIGNAL SIGTERM", dockerfile())
        proc, port, admin, sink = self.start_configmap_dotgate(drain_grace=2)
        c = self.raw_client(port)
        self.assertReply(c.greeting(), 220)
        t0 = time.monotonic()
        proc.signal(signal.SIGTERM)
        wait_until(lambda: self.http_get(admin, "/readyz")[0] == 503, 2, what="/readyz 503 while draining")
        self.assertReply(c.read_reply(timeout=10), 421, "4.3.2")
        self.assertGreaterEqual(time.monotonic() - t0, 1.7)
        self.assertEqual(proc.wait(10), 0, proc.output()[-2000:])

    def test_kubernetes_objects_fit_together(self):
        pod_labels = self.deployment["spec"]["template"]["metadata"]["labels"]
        selector = self.deployment["spec"]["selector"]["matchLabels"]
        self.assertTrue(selector.items() <= pod_labels.items())
        pdb = find(self.objs, "PodDisruptionBudget", "dotgate")
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"], selector)
        self.assertLess(pdb["spec"]["minAvailable"], self.deployment["spec"]["replicas"])
        hpa = find(self.objs, "HorizontalPodAutoscaler", "dotgate")
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"], "dotgate")
        self.assertGreater(hpa["spec"]["minReplicas"], pdb["spec"]["minAvailable"])
        self.assertIn("cpu", self.dg_container["resources"]["requests"], "CPU utilisation needs a request")
        for svc_name in ("dotgate", "dotgate-admin"):
            self.assertTrue(find(self.objs, "Service", svc_name)["spec"]["selector"].items() <= pod_labels.items())
        redis = find(self.objs, "Deployment", "dotgate-redis")
        redis_svc = find(self.objs, "Service", "dotgate-redis")
        self.assertTrue(redis_svc["spec"]["selector"].items() <= redis["spec"]["template"]["metadata"]["labels"].items())
        self.assertEqual(named_port(container(redis, "redis"), redis_svc["spec"]["ports"][0]["targetPort"]), 6379)
        # The Secret with the certificates is mounted (optional until dotgate terminates TLS).
        vols = {v["name"]: v for v in self.deployment["spec"]["template"]["spec"]["volumes"]}
        self.assertEqual(vols["tls"]["secret"]["secretName"], "dotgate-tls")
        self.assertIn("tls", [m["name"] for m in self.dg_container["volumeMounts"]])
        # The image runs as the user the Dockerfile creates.
        self.assertIn("USER dotgate", dockerfile())
        uid = int(re.search(r"useradd [^&]*--uid (\d+)", " ".join(dockerfile())).group(1))
        self.assertEqual(self.dg_container["securityContext"]["runAsUser"], uid)
        with open(os.path.join(K8S, "kustomization.yaml")) as f:
            listed = yaml.safe_load(f)["resources"]
        files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(K8S, "*.yaml")) if not p.endswith("kustomization.yaml"))
        self.assertEqual(sorted(listed), files)

    # -- Dockerfile -------------------------------------------------------------------------------

    def test_dockerfile_builds_as_ci_and_ships_what_it_runs(self):
        lines = dockerfile()
        self.assertEqual([l for l in lines if l.startswith("FROM")], ["FROM debian:12-slim AS build", "FROM debian:12-slim"])
        builds = [l for l in lines if "meson setup" in l]
        self.assertEqual(len(builds), 1)
        # .ci/run -> deploy/run-tests.sh: stage 1 is `meson setup build` with no options (the
        # project defaults) and ninja; the image builds the same way, the daemon only.
        with open(os.path.join(DEPLOY, "run-tests.sh")) as f:
            run_tests = f.read()
        self.assertRegex(run_tests, r'(?m)^  meson_stage "\$BUILD_DIR" "tests"$')
        self.assertRegex(builds[0], r"meson setup build && ninja -C build proxy/dotgate$")
        with open(os.path.join(ROOT, ".ci", "run")) as f:
            self.assertIn("deploy/run-tests.sh", f.read())
        packages = set(re.search(r"PACKAGES=\(([^)]*)\)", run_tests).group(1).split())
        build_install = [l for l in lines if "apt-get install" in l and "meson" in l][0]
        build_pkgs = set(build_install.split("--no-install-recommends", 1)[1].split("&&")[0].split())
        self.assertLessEqual(build_pkgs, packages, "the image's build packages are the test run's")
        # The run stage installs the package of every library the binary links directly
        # (libc6, libstdc++6 and libgcc-s1 are in debian:12-slim already).
        run_install = [l for l in lines if "apt-get install" in l and "meson" not in l][0]
        run_pkgs = set(run_install.split("--no-install-recommends", 1)[1].split("&&")[0].split())
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                            subprocess.run(["readelf", "-d", dotgate_bin()], capture_output=True, text=True).stdout)
        self.assertTrue(needed)
        for lib in needed:
            if re.match(r"lib(asan|ubsan|lsan|tsan)\.so", lib):
                continue  # the sanitizer build's runtime (the ASan stage): never in a release image
            owner = subprocess.run(["dpkg", "-S", "*/" + lib], capture_output=True, text=True).stdout
            owners = {line.split(":", 1)[0].strip() for line in owner.splitlines() if ":" in line}
            self.assertTrue(owners, "no Debian package holds %s" % lib)
            base = {"libc6", "libstdc++6", "libgcc-s1"}
            self.assertTrue(owners & (run_pkgs | base), "%s (from %s) is not installed in the image" % (lib, owners))
        # Every file it copies exists, and the example config it installs names only those files.
        for l in lines:
            if l.startswith("COPY") and "--from" not in l and l != "COPY . .":
                for src in l.split()[1:-1]:
                    self.assertTrue(os.path.exists(os.path.join(ROOT, src)), src)
        with open(os.path.join(DEPLOY, "dotgate.example.json")) as f:
            example = f.read()
        for named in re.findall(r"/etc/dotgate/([^\"]+)", example):
            self.assertTrue(any(l.startswith("COPY") and "deploy/examples/" + named in l for l in lines), named)
        # Its ports are the ones it tells dotgate to use.
        expose = [l for l in lines if l.startswith("EXPOSE")][0].split()[1:]
        cmd = json.loads([l for l in lines if l.startswith("CMD")][0][3:])
        self.assertEqual(sorted(expose), sorted([cmd[cmd.index("--listen") + 1].rsplit(":", 1)[1],
                                                 cmd[cmd.index("--admin") + 1].rsplit(":", 1)[1]]))

    # -- systemd ----------------------------------------------------------------------------------

    def unit(self):
        with open(os.path.join(DEPLOY, "systemd", "dotgate.service")) as f:
            text = f.read()
        keys = {}
        for line in text.splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                keys.setdefault(k.strip(), []).append(v.strip())
        return text, keys

    def test_systemd_unit_verifies_and_matches_dotgate(self):
        text, keys = self.unit()
        self.assertEqual(keys["Type"], ["notify"])
        self.assertEqual(keys["KillSignal"], ["SIGTERM"])
        self.assertIn("/bin/kill -HUP $MAINPID", keys["ExecReload"])
        for k, v in (("ProtectSystem", "strict"), ("NoNewPrivileges", "yes"), ("DynamicUser", "yes")):
            self.assertEqual(keys[k], [v])
        self.assertIn("CAP_NET_BIND_SERVICE", keys["AmbientCapabilities"][0])
        # The config the unit's comment installs: its drain_grace fits in TimeoutStopSec, and
        # LimitNOFILE covers two sockets per allowed connection.
        self.assertIn("deploy/postfix/dotgate.json /etc/dotgate/dotgate.json", text)
        with open(os.path.join(DEPLOY, "postfix", "dotgate.json")) as f:
            cfg = json.load(f)
        self.assertGreater(int(keys["TimeoutStopSec"][0]), cfg.get("drain_grace", 30) + 5)
        self.assertGreaterEqual(int(keys["LimitNOFILE"][0]), 2 * cfg.get("smtp", {}).get("max_connections", 1000) + 100)
        analyze = shutil.which("systemd-analyze")
        if not analyze:
            self.skipTest("systemd-analyze not installed")
        # verify wants ExecStart's binary to exist: point it at the one under test.
        d = self.make_dir("unit")
        path = os.path.join(d, "dotgate.service")
        with open(path, "w") as f:
            f.write(text.replace("/usr/local/bin/dotgate", os.path.abspath(dotgate_bin())))
        out = subprocess.run([analyze, "verify", path], capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertNotIn("dotgate.service", out.stderr, out.stderr)  # no warning about our unit

    def test_sd_notify_ready_reloading_stopping(self):
        d = tempfile.mkdtemp(prefix="dotgate-notify-")
        self.addCleanup(shutil.rmtree, d, True)
        sock_path = os.path.join(d, "notify")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(s.close)
        s.bind(sock_path)
        s.settimeout(10)

        def next_message():
            return s.recv(4096).decode()

        proc, port, admin, sink = self.start_configmap_dotgate(drain_grace=1, env={"NOTIFY_SOCKET": sock_path})
        ready = next_message()
        self.assertIn("READY=1", ready.split("\n"))
        # READY=1 comes once the listeners are bound (wait_listening saw them before we read it,
        # and no other message came first).
        proc.signal(signal.SIGHUP)
        reloading = next_message().split("\n")
        self.assertIn("RELOADING=1", reloading)
        self.assertTrue(any(l.startswith("MONOTONIC_USEC=") for l in reloading), reloading)
        self.assertIn("READY=1", next_message().split("\n"))
        proc.signal(signal.SIGTERM)
        self.assertIn("STOPPING=1", next_message().split("\n"))
        self.assertEqual(proc.wait(10), 0)

    # -- metrics: dashboard and rules ------------------------------------------------------------

    def scrape_after_traffic(self):
        proc, port, admin, sink = self.start_configmap_dotgate()
        c = self.raw_client(port)
        self.assertReply(c.greeting(), 220)
        replies = c.send_message("a@example.org", ["b@example.net"], BODY)
        self.assertEqual(replies[-1].code, 250)
        replies = c.send_message("a@example.org", ["b@example.net"], b"Subject: x\r\n\r\ncasino bonus\r\n", ehlo=False)
        self.assertEqual(replies[-1].code, 550, "the ConfigMap's keywords policy refuses its own phrase")
        self.assertReply(c.converse("QUIT"), 221)
        self.assertEqual(len(sink.wait_for(1)), 1)
        status, body = self.http_get(admin, "/metrics")
        self.assertEqual(status, 200)
        return body

    def test_dashboard_and_rules_use_exported_metrics(self):
        body = self.scrape_after_traffic()
        exported = exported_names(body)
        with open(os.path.join(DEPLOY, "grafana", "dotgate.json")) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        for var in dash["templating"]["list"]:
            q = var.get("query")
            if isinstance(q, dict):
                exprs.append(q["query"])
        with open(os.path.join(DEPLOY, "prometheus", "dotgate-rules.yml")) as f:
            rules = yaml.safe_load(f)
        rule_exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
        self.assertGreaterEqual(len(rule_exprs), 4)
        used = set()
        for e in exprs + rule_exprs:
            used.update(re.findall(r"\bdotgate_[a-zA-Z0-9_]+", e))
        self.assertGreaterEqual(len(used), 10)
        missing = sorted(used - exported)
        self.assertEqual(missing, [], "named by the dashboard or the rules, not exported by dotgate")
        # The label values the rules select on exist.
        for name, label, value in re.findall(r'(dotgate_[a-z_]+)\{[^}]*?(\w+)="([^"$]+)"', "\n".join(rule_exprs)):
            self.assertRegex(body, r'(?m)^%s\{[^}]*%s="%s"' % (name, label, re.escape(value)),
                             "%s{%s=%r} is never exported" % (name, label, value))
        # What the issue asks the dashboard to show, each with a panel.
        titles = " | ".join(p["title"].lower() for p in dash["panels"])
        for topic in ("transactions by outcome", "replies by class", "policy latency", "policy errors", "pool", "connections"):
            self.assertIn(topic, titles)
        self.assertEqual(len({p["id"] for p in dash["panels"]}), len(dash["panels"]))
        # And the alerts the issue names.
        names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
        for alert in ("DotgateDownstreamUnreachable", "DotgateVerdictErrorsRising", "Dotgate4xxShareRising",
                      "DotgateDrainingTooLong"):
            self.assertIn(alert, names)

    def test_promtool_check_rules(self):
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool not installed (Debian package prometheus; deploy/run-tests.sh installs it)")
        out = subprocess.run([promtool, "check", "rules", os.path.join(DEPLOY, "prometheus", "dotgate-rules.yml")],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("SUCCESS", out.stdout + out.stderr)


if __name__ == "__main__":
    main()
