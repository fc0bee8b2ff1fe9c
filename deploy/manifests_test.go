package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// What the manifests promise.
const (
	swarmBin      = "/usr/local/bin/swarm"
	gossipPort    = 7946
	libp2pPort    = 7947
	apiPort       = 7070
	fleetKeyName  = "loadswarm-fleet-key" // made by kubectl create secret, see k8s/base
	fleetKeyKey   = "fleet.key"
	regionLabel   = "topology.kubernetes.io/region"
	containerName = "swarm"
)

// regions are the overlays; the fleet is all of them.
var regions = []string{"eu-west", "us-east", "ap-south"}

// scheme knows the kinds the manifests may hold. Any other kind is an
// error: a manifest of a kind this test does not know is not checked.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{appsv1.AddToScheme, corev1.AddToScheme, policyv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// strict decodes like the API server's strict field validation: an unknown
// or duplicate field is an error, and so is a kind not in scheme.
var strict = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

// rendered is one kustomization's output, decoded.
type rendered struct {
	statefulSets []*appsv1.StatefulSet
	services     []*corev1.Service
	pdbs         []*policyv1.PodDisruptionBudget
	secrets      []*corev1.Secret
}

// build runs kustomize on a directory as `kubectl apply -k` would (the
// real files on disk, default options: files only from inside the
// kustomization's root).
func build(dir string) ([]byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	return m.AsYaml()
}

// decode splits a multi-document YAML stream and decodes every document
// strictly into its typed struct.
func decode(stream []byte) (*rendered, error) {
	var r rendered
	var errs []error
	for i, doc := range bytes.Split(stream, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, gvk, err := strict.Decode(doc, nil, nil)
		if err != nil {
			what := fmt.Sprintf("document %d", i)
			if gvk != nil {
				what += " (" + gvk.Kind + ")"
			}
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			continue
		}
		switch o := obj.(type) {
		case *appsv1.StatefulSet:
			r.statefulSets = append(r.statefulSets, o)
		case *corev1.Service:
			r.services = append(r.services, o)
		case *policyv1.PodDisruptionBudget:
			r.pdbs = append(r.pdbs, o)
		case *corev1.Secret:
			r.secrets = append(r.secrets, o)
		default:
			errs = append(errs, fmt.Errorf("document %d: kind %s: not one this test checks; add it here", i, gvk.Kind))
		}
	}
	return &r, errors.Join(errs...)
}

func render(t *testing.T, dir string) *rendered {
	t.Helper()
	y, err := build(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decode(y)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestOverlays renders each region's overlay and the fleet and checks them.
func TestOverlays(t *testing.T) {
	fleet := render(t, "k8s/fleet")
	for _, region := range regions {
		t.Run(region, func(t *testing.T) {
			r := render(t, filepath.Join("k8s/overlays", region))
			if len(r.statefulSets) != 1 {
				t.Fatalf("%d StatefulSets, want 1", len(r.statefulSets))
			}
			if got := regionOf(r.statefulSets[0]); got != region {
				t.Errorf("StatefulSet %s: region %q, want %q", r.statefulSets[0].Name, got, region)
			}
			for _, err := range check(r, fleet) {
				t.Error(err)
			}
		})
	}
	t.Run("fleet", func(t *testing.T) {
		var got []string
		for _, s := range fleet.statefulSets {
			got = append(got, regionOf(s))
		}
		if !sameSet(got, regions) {
			t.Errorf("fleet regions %v, want one StatefulSet each for %v", got, regions)
		}
		for _, err := range check(fleet, fleet) {
			t.Error(err)
		}
	})
}

// TestHostNetworkComponent renders the fleet with the host-network
// component (testdata/host-network), as a user's own kustomization would.
func TestHostNetworkComponent(t *testing.T) {
	r := render(t, "testdata/host-network")
	fleet := render(t, "k8s/fleet")
	if len(r.statefulSets) != len(regions) {
		t.Fatalf("%d StatefulSets, want %d", len(r.statefulSets), len(regions))
	}
	for _, s := range r.statefulSets {
		p := s.Spec.Template.Spec
		if !p.HostNetwork || p.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
			t.Errorf("%s: hostNetwork %v, dnsPolicy %q", s.Name, p.HostNetwork, p.DNSPolicy)
		}
		if a := p.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) == 0 {
			t.Errorf("%s: host network without a required anti-affinity: two nodes on one host would share ports", s.Name)
		}
		if a := p.Affinity; a == nil || a.NodeAffinity == nil {
			t.Errorf("%s: the component dropped the region's node affinity", s.Name)
		}
	}
	for _, err := range check(r, fleet) {
		t.Error(err)
	}
}

// check returns every problem in r. fleet is the whole fleet's rendering:
// seeds must name pods that it runs.
func check(r *rendered, fleet *rendered) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	// Names: unique per kind, valid DNS labels.
	seen := map[string]bool{}
	name := func(kind string, m metav1.ObjectMeta) {
		k := kind + "/" + m.Namespace + "/" + m.Name
		if seen[k] {
			bad("%s %s: defined twice", kind, m.Name)
		}
		seen[k] = true
		for _, e := range validation.IsDNS1123Label(m.Name) {
			bad("%s %s: name: %s", kind, m.Name, e)
		}
	}
	for _, s := range r.statefulSets {
		name("StatefulSet", s.ObjectMeta)
	}
	for _, s := range r.services {
		name("Service", s.ObjectMeta)
	}
	for _, p := range r.pdbs {
		name("PodDisruptionBudget", p.ObjectMeta)
	}
	for _, s := range r.secrets {
		name("Secret", s.ObjectMeta)
		if _, ok := s.Data[fleetKeyKey]; s.Name == fleetKeyName && !ok {
			if _, ok := s.StringData[fleetKeyKey]; !ok {
				bad("Secret %s: no %s key", s.Name, fleetKeyKey)
			}
		}
	}

	// No Service exposes the API, or any port but gossip and libp2p.
	for _, svc := range r.services {
		for _, p := range svc.Spec.Ports {
			if p.Port == apiPort || p.TargetPort.IntValue() == apiPort || (p.Port != gossipPort && p.Port != libp2pPort) {
				bad("Service %s: port %s (%d -> %s): only gossip %d and libp2p %d may be exposed; the API never",
					svc.Name, p.Name, p.Port, p.TargetPort.String(), gossipPort, libp2pPort)
			}
		}
	}

	regionsSeen := map[string]string{}
	for _, s := range r.statefulSets {
		errs = append(errs, checkStatefulSet(s, r, fleet)...)
		reg := regionOf(s)
		if other, ok := regionsSeen[reg]; ok {
			bad("StatefulSets %s and %s: both in region %q", other, s.Name, reg)
		}
		regionsSeen[reg] = s.Name
	}

	// Each PDB selects exactly one StatefulSet's pods, and each StatefulSet
	// has one.
	covered := map[string]int{}
	for _, p := range r.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || sel.Empty() {
			bad("PodDisruptionBudget %s: selector %v selects every pod in the namespace (%v)", p.Name, p.Spec.Selector, err)
			continue
		}
		var hits []string
		for _, s := range r.statefulSets {
			if sel.Matches(labels.Set(s.Spec.Template.Labels)) {
				hits = append(hits, s.Name)
				covered[s.Name]++
			}
		}
		if len(hits) != 1 {
			bad("PodDisruptionBudget %s: selects the pods of %v, want exactly one StatefulSet", p.Name, hits)
		}
		if p.Spec.MaxUnavailable == nil && p.Spec.MinAvailable == nil {
			bad("PodDisruptionBudget %s: neither maxUnavailable nor minAvailable", p.Name)
		}
	}
	for _, s := range r.statefulSets {
		if covered[s.Name] != 1 {
			bad("StatefulSet %s: %d PodDisruptionBudgets select its pods, want 1", s.Name, covered[s.Name])
		}
	}

	// StatefulSets' selectors do not overlap (each controller, Service and
	// PDB sees only its own region's pods).
	for i, a := range r.statefulSets {
		sa, _ := metav1.LabelSelectorAsSelector(a.Spec.Selector)
		for _, b := range r.statefulSets[i+1:] {
			if sa.Matches(labels.Set(b.Spec.Template.Labels)) {
				bad("StatefulSets %s and %s: %s's selector matches %s's pods", a.Name, b.Name, a.Name, b.Name)
			}
		}
	}
	return errs
}

func checkStatefulSet(s *appsv1.StatefulSet, r, fleet *rendered) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("StatefulSet %s: "+format, append([]any{s.Name}, args...)...))
	}
	spec := s.Spec.Template.Spec

	sel, err := metav1.LabelSelectorAsSelector(s.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(s.Spec.Template.Labels)) {
		bad("selector %v does not select its own pod template (%v)", s.Spec.Selector, err)
	}
	if s.Spec.Replicas == nil || *s.Spec.Replicas < 2 {
		bad("replicas %v: want at least 2 (seeds are pods 0 and 1)", s.Spec.Replicas)
	}

	// The headless Service that gives the pods their DNS names.
	var svc *corev1.Service
	for _, v := range r.services {
		if v.Name == s.Spec.ServiceName {
			svc = v
		}
	}
	switch {
	case svc == nil:
		bad("serviceName %q: no such Service", s.Spec.ServiceName)
	case svc.Spec.ClusterIP != corev1.ClusterIPNone:
		bad("Service %s: not headless (clusterIP %q)", svc.Name, svc.Spec.ClusterIP)
	case !svc.Spec.PublishNotReadyAddresses:
		bad("Service %s: publishNotReadyAddresses is off: starting nodes could not find each other", svc.Name)
	case len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(s.Spec.Template.Labels)):
		bad("Service %s: selector %v does not select the pods", svc.Name, svc.Spec.Selector)
	}

	// Pinned to its region.
	reg := regionOf(s)
	if reg == "" {
		bad("no SWARM_REGION")
	}
	pinned := false
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		pinned = len(terms) > 0
		for _, term := range terms { // terms are ORed: every one must pin
			ok := false
			for _, e := range term.MatchExpressions {
				ok = ok || (e.Key == regionLabel && e.Operator == corev1.NodeSelectorOpIn && slices.Equal(e.Values, []string{reg}))
			}
			pinned = pinned && ok
		}
	}
	if !pinned {
		bad("not pinned by a required node affinity to %s=%s", regionLabel, reg)
	}

	if len(spec.Containers) != 1 || spec.Containers[0].Name != containerName {
		bad("want one container named %q", containerName)
		return errs
	}
	c := spec.Containers[0]
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			bad("env %s set twice", e.Name)
		}
		env[e.Name] = e
	}
	value := func(k string) string { return env[k].Value }
	field := func(k string) string {
		if v := env[k].ValueFrom; v != nil && v.FieldRef != nil {
			return v.FieldRef.FieldPath
		}
		return ""
	}
	if c.Image == "" || strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
		bad("image %q: want a pinned tag", c.Image)
	}
	if len(c.Command) != 0 || !slices.Equal(c.Args, []string{"join"}) {
		bad("command %v args %v: want the image's entrypoint with args [join]", c.Command, c.Args)
	}
	if field("SWARM_NAME") != "metadata.name" {
		bad("SWARM_NAME: want the pod name (fieldRef metadata.name), got %+v", env["SWARM_NAME"])
	}
	switch adv := field("SWARM_ADVERTISE"); {
	case adv == "status.podIP" && !spec.HostNetwork:
	case adv == "status.hostIP" && spec.HostNetwork:
	default:
		bad("SWARM_ADVERTISE from %q with hostNetwork %v: want status.podIP (or status.hostIP on the host's network)", adv, spec.HostNetwork)
	}
	if v := value("SWARM_BIND"); v != "0.0.0.0:"+strconv.Itoa(gossipPort) {
		bad("SWARM_BIND %q", v)
	}
	if z, ok := env["SWARM_ZONE"]; ok && z.Value == "" && field("SWARM_ZONE") != "metadata.labels['topology.kubernetes.io/zone']" {
		bad("SWARM_ZONE: neither a value nor the pod's zone label")
	}

	// The API: loopback only, never a container port.
	api := value("SWARM_API")
	if host, port, err := net.SplitHostPort(api); err != nil || host != "127.0.0.1" || port != strconv.Itoa(apiPort) {
		bad("SWARM_API %q: want 127.0.0.1:%d (the API has no authentication)", api, apiPort)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
		for _, e := range validation.IsValidPortName(p.Name) {
			bad("port name %q: %s", p.Name, e)
		}
		if p.ContainerPort != gossipPort && p.ContainerPort != libp2pPort {
			bad("container port %s %d: only %d and %d", p.Name, p.ContainerPort, gossipPort, libp2pPort)
		}
	}
	if svc != nil {
		for _, p := range svc.Spec.Ports {
			target := int32(p.TargetPort.IntValue())
			if p.TargetPort.Type == intstr.String {
				target = ports[p.TargetPort.StrVal]
			}
			if target != p.Port {
				bad("Service %s port %s: targets %s, not a container port %d", svc.Name, p.Name, p.TargetPort.String(), p.Port)
			}
		}
	}

	// Probes run the binary against the loopback API.
	wantProbe := []string{swarmBin, "peers", "--api", api}
	for kind, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		switch {
		case p == nil && kind == "startup":
		case p == nil:
			bad("no %s probe", kind)
		case p.HTTPGet != nil || p.TCPSocket != nil || p.GRPC != nil:
			bad("%s probe: not exec: the API is on the pod's loopback, out of the kubelet's reach", kind)
		case p.Exec == nil || !slices.Equal(p.Exec.Command, wantProbe):
			bad("%s probe: want exec %v, got %+v", kind, wantProbe, p.Exec)
		}
	}

	// Resources.
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okr := c.Resources.Requests[res]
		lim, okl := c.Resources.Limits[res]
		if !okr || !okl || req.IsZero() || lim.IsZero() {
			bad("resources: %s request and limit must both be set", res)
		} else if req.Cmp(lim) > 0 {
			bad("resources: %s request %s over its limit %s", res, req.String(), lim.String())
		}
	}

	// Security.
	sc := c.SecurityContext
	psc := spec.SecurityContext
	nonRoot := (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
	if !nonRoot {
		bad("runAsNonRoot is not set")
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		bad("readOnlyRootFilesystem is not set")
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		bad("allowPrivilegeEscalation is not false")
	}
	if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		bad("capabilities: want drop [ALL] and nothing added")
	}

	// Mounts: /data from the claim template, the fleet key from its Secret.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	dataDir := value("SWARM_DATA_DIR")
	dataOK := false
	for _, pvc := range s.Spec.VolumeClaimTemplates {
		if m, ok := mounts[pvc.Name]; ok && m.MountPath == dataDir && !m.ReadOnly {
			_, dataOK = pvc.Spec.Resources.Requests[corev1.ResourceStorage]
		}
	}
	if dataDir == "" || !dataOK {
		bad("SWARM_DATA_DIR %q: not a writable mount of a volumeClaimTemplate with a storage request", dataDir)
	}
	keyFile := value("SWARM_FLEET_KEY")
	keyOK := false
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok || v.Secret == nil || v.Secret.SecretName != fleetKeyName || !m.ReadOnly {
			continue
		}
		for _, it := range v.Secret.Items {
			if it.Key == fleetKeyKey && filepath.Join(m.MountPath, it.Path) == keyFile {
				keyOK = v.Secret.Optional == nil || !*v.Secret.Optional
			}
		}
	}
	if !keyOK {
		bad("SWARM_FLEET_KEY %q: not the %s key of Secret %s, mounted read-only (and not optional)", keyFile, fleetKeyKey, fleetKeyName)
	}

	// Seeds: pods of the fleet, covering every region.
	seedRegions := map[string]bool{}
	for _, seed := range strings.Split(value("SWARM_SEEDS"), ",") {
		reg, err := seedRegion(strings.TrimSpace(seed), fleet)
		if err != nil {
			bad("SWARM_SEEDS: %v", err)
			continue
		}
		seedRegions[reg] = true
	}
	for _, reg := range regions {
		if !seedRegions[reg] {
			bad("SWARM_SEEDS: no seed in region %s: the regions would not find each other", reg)
		}
	}
	return errs
}

// seedRegion says which region a seed "<pod>.<service>:7946" is in, and
// fails unless it names a pod that the fleet runs under its headless
// Service.
func seedRegion(seed string, fleet *rendered) (string, error) {
	host, port, err := net.SplitHostPort(seed)
	if err != nil || port != strconv.Itoa(gossipPort) {
		return "", fmt.Errorf("seed %q: want <pod>.<service>:%d", seed, gossipPort)
	}
	pod, svc, ok := strings.Cut(host, ".")
	if !ok || strings.Contains(svc, ".") {
		return "", fmt.Errorf("seed %q: want the short name <pod>.<service> (it resolves in any namespace and cluster domain)", seed)
	}
	for _, s := range fleet.statefulSets {
		ord, ok := strings.CutPrefix(pod, s.Name+"-")
		n, err := strconv.Atoi(ord)
		if !ok || err != nil || s.Spec.ServiceName != svc {
			continue
		}
		if s.Spec.Replicas == nil || n < 0 || int32(n) >= *s.Spec.Replicas {
			return "", fmt.Errorf("seed %q: StatefulSet %s has no pod %d", seed, s.Name, n)
		}
		return regionOf(s), nil
	}
	return "", fmt.Errorf("seed %q: no StatefulSet of the fleet runs that pod under that Service", seed)
}

func regionOf(s *appsv1.StatefulSet) string {
	for _, c := range s.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == "SWARM_REGION" {
				return e.Value
			}
		}
	}
	return ""
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestBrokenManifests proves the checks above can fail: each directory
// under testdata/ is a kustomization with one deliberate mistake.
func TestBrokenManifests(t *testing.T) {
	fleet := render(t, "k8s/fleet")
	for _, tc := range []struct {
		dir  string
		want string // in the error
	}{
		// Decoding: what `kubectl apply` would reject or silently drop.
		{"unknown-field", `unknown field "spec.template.spec.containers[0].livenessProbe.exec.cmd"`},
		{"misplaced-field", `unknown field "spec.template.spec.image"`},
		{"unknown-kind", `no kind "Widget" is registered`},
		// Checks: valid Kubernetes, wrong for Loadswarm.
		{"http-probe", "liveness probe: not exec"},
		{"api-service", "the API never"},
		{"no-region-seed", "no seed in region ap-south"},
		{"no-fleet-key", "SWARM_FLEET_KEY"},
		{"pdb-selects-all", "selects every pod"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			y, err := build(filepath.Join("testdata", tc.dir))
			if err != nil {
				t.Fatal(err)
			}
			r, err := decode(y)
			if err == nil {
				err = errors.Join(check(r, fleet)...)
			}
			if err == nil {
				t.Fatalf("no error, want one with %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\nwant one with %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}
