// Command crictl is a small stand-in for cri-tools' crictl in the pyci lab kind node image (the Go
// module proxy the lab can reach does not serve sigs.k8s.io/cri-tools). It covers what kind and a
// person debugging a node use: `images`, `inspecti IMAGE` (JSON, as kind parses it), `pods`,
// `ps [-a]` and `info`, talking CRI v1 to containerd's socket.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const defaultEndpoint = "unix:///run/containerd/containerd.sock"

func main() {
	args := os.Args[1:]
	endpoint := defaultEndpoint
	if v := os.Getenv("CONTAINER_RUNTIME_ENDPOINT"); v != "" {
		endpoint = v
	}
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch {
		case strings.HasPrefix(args[0], "--runtime-endpoint="):
			endpoint = strings.TrimPrefix(args[0], "--runtime-endpoint=")
		case (args[0] == "-r" || args[0] == "--runtime-endpoint") && len(args) > 1:
			endpoint = args[1]
			args = args[1:]
		}
		args = args[1:]
	}
	if len(args) == 0 {
		fail("usage: crictl [--runtime-endpoint URL] images|inspecti IMAGE|pods|ps [-a]|info")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail("connect %s: %v", endpoint, err)
	}
	defer conn.Close()
	images := runtime.NewImageServiceClient(conn)
	rt := runtime.NewRuntimeServiceClient(conn)

	switch args[0] {
	case "images", "image", "img":
		resp, err := images.ListImages(ctx, &runtime.ListImagesRequest{})
		check(err)
		w := table("IMAGE", "TAG", "IMAGE ID", "SIZE")
		for _, img := range resp.Images {
			repo, tag := "<none>", "<none>"
			if len(img.RepoTags) > 0 {
				i := strings.LastIndex(img.RepoTags[0], ":")
				repo, tag = img.RepoTags[0][:i], img.RepoTags[0][i+1:]
			} else if len(img.RepoDigests) > 0 {
				repo = strings.SplitN(img.RepoDigests[0], "@", 2)[0]
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", repo, tag, short(img.Id), size(img.GetSize()))
		}
		w.Flush()
	case "inspecti":
		if len(args) < 2 {
			fail("inspecti: no image given")
		}
		resp, err := images.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: args[1]}, Verbose: true})
		check(err)
		if resp.Image == nil {
			fail("no such image %q present", args[1])
		}
		out := map[string]any{"status": map[string]any{
			"id": resp.Image.Id, "repoTags": resp.Image.RepoTags, "repoDigests": resp.Image.RepoDigests,
			"size": fmt.Sprint(resp.Image.GetSize()), "pinned": resp.Image.Pinned,
		}}
		printJSON(out)
	case "pods":
		resp, err := rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
		check(err)
		w := table("POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT")
		for _, p := range resp.Items {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\n", short(p.Id), age(p.CreatedAt), p.State, p.Metadata.Name, p.Metadata.Namespace, p.Metadata.Attempt)
		}
		w.Flush()
	case "ps":
		filter := &runtime.ContainerFilter{State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}}
		if len(args) > 1 && (args[1] == "-a" || args[1] == "--all") {
			filter = nil
		}
		resp, err := rt.ListContainers(ctx, &runtime.ListContainersRequest{Filter: filter})
		check(err)
		w := table("CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID")
		for _, c := range resp.Containers {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", short(c.Id), c.Image.GetImage(), age(c.CreatedAt), c.State, c.Metadata.Name, c.Metadata.Attempt, short(c.PodSandboxId))
		}
		w.Flush()
	case "info":
		resp, err := rt.Status(ctx, &runtime.StatusRequest{})
		check(err)
		printJSON(resp.Status)
	default:
		fail("crictl (pyci lab): unsupported command %q", args[0])
	}
}

func table(cols ...string) *tabwriter.Writer {
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, strings.Join(cols, "\t"))
	return w
}

func short(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 13 {
		return id[:13]
	}
	return id
}

func size(b uint64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMB", float64(b)/1e6)
	case b >= 1<<10:
		return fmt.Sprintf("%.1fkB", float64(b)/1e3)
	}
	return fmt.Sprintf("%dB", b)
}

func age(ns int64) string {
	return time.Since(time.Unix(0, ns)).Round(time.Second).String() + " ago"
}

func printJSON(v any) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	check(enc.Encode(v))
}

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(1)
}
