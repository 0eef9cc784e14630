"""Fast model loading (templates/deployment.yaml, the `modelLoading` and `extra*` values).

Cases: by default Triton reads `modelRepository` itself with Triton's own load parallelism,
and the pod carries no FUSE annotation, init container or extra volume;
`modelLoading.threadCount` becomes `--model-load-thread-count`; the Cloud Storage FUSE CSI
driver: the webhook's pod annotation and the sidecar's resource annotations, an ephemeral
read-only `gcsfuse.csi.storage.gke.io` volume of the repository's bucket mounted at its folder
(`only-dir`) with the cache, read-ahead and metadata attributes, Triton reading the mount, the
file cache in a memory volume or on Local SSD (selected by node label) or off, a whole bucket;
the model cache: an init container copies the repository into an emptyDir, memory or
persistent volume that Triton mounts read-only and reads, and its shell line run for real with
a stand-in `gcloud` (it creates the folder and syncs source to destination); `extraEnvFrom`,
`extraVolumes` and `extraVolumeMounts` reach the pod; the refusals (both loaders, a repository
that is not `gs://`, a claim without a name, a `hostPath` or a chart-owned volume name, a flag
the chart writes given again in `server.extraArgs`, schema rejections). Pod Security
"restricted" for these pods, init container included, is checked on every ci file in
test_security.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helpers import HelmFailedError, Manifest, field, only, render_chart

TEMPLATE = "templates/deployment.yaml"
REPO = "gs://models-bucket/serving/bert"


def pod(helm: Path, values: dict[str, Any]) -> Manifest:
    """The Triton Deployment's pod template."""
    rendered = render_chart(helm, {"modelRepository": REPO, **values}, show_only=[TEMPLATE])
    template: Manifest = only(rendered, "Deployment")["spec"]["template"]
    return template


def triton(template: Manifest) -> Manifest:
    container: Manifest = field(template, "spec.containers[name=triton]")
    return container


def repository_arg(template: Manifest) -> str:
    (arg,) = [a for a in triton(template)["args"] if a.startswith("--model-repository=")]
    return str(arg).split("=", 1)[1]


class TestDefaults:
    def test_triton_reads_the_repository_itself(self, helm: Path) -> None:
        template = pod(helm, {})
        assert repository_arg(template) == REPO
        assert "--model-load-thread-count=4" in triton(template)["args"]
        assert "initContainers" not in template["spec"]
        assert not any(k.startswith("gke-gcsfuse/") for k in template["metadata"]["annotations"])
        assert {v["name"] for v in template["spec"]["volumes"]} == {"dshm", "tmp"}
        assert "envFrom" not in triton(template)

    def test_thread_count(self, helm: Path) -> None:
        args = triton(pod(helm, {"modelLoading": {"threadCount": 16}}))["args"]
        assert [a for a in args if "thread-count" in a] == ["--model-load-thread-count=16"]


class TestGcsFuse:
    @staticmethod
    def fuse(helm: Path, **settings: Any) -> Manifest:
        return pod(helm, {"modelLoading": {"gcsFuse": {"enabled": True, **settings}}})

    def test_pod_annotations_ask_for_the_sidecar(self, helm: Path) -> None:
        resources = {"cpu-limit": "0", "memory-request": "1Gi", "ephemeral-storage-limit": "0"}
        annotations = self.fuse(helm, sidecarResources=resources)["metadata"]["annotations"]
        fuse = {k: v for k, v in annotations.items() if k.startswith("gke-gcsfuse/")}
        assert fuse == {
            "gke-gcsfuse/volumes": "true",
            "gke-gcsfuse/cpu-limit": "0",
            "gke-gcsfuse/memory-limit": "0",  # a default, merged with the keys given
            "gke-gcsfuse/memory-request": "1Gi",
            "gke-gcsfuse/ephemeral-storage-limit": "0",
        }

    def test_the_repository_folder_is_mounted_read_only_and_triton_reads_it(
        self, helm: Path
    ) -> None:
        template = self.fuse(helm)
        volume = field(template, "spec.volumes[name=model-repository].csi")
        assert volume["driver"] == "gcsfuse.csi.storage.gke.io"
        assert volume["readOnly"] is True
        attributes = volume["volumeAttributes"]
        assert attributes == {
            "bucketName": "models-bucket",
            "mountOptions": "implicit-dirs,only-dir=serving/bert,"
            "file-cache:enable-parallel-downloads:true,read_ahead_kb=1024",
            "fileCacheCapacity": "50Gi",
            "fileCacheForRangeRead": "true",
            "metadataCacheTTLSeconds": "-1",
            "gcsfuseMetadataPrefetchOnMount": "true",
        }
        assert all(isinstance(v, str) for v in attributes.values())  # a CSI attribute map
        mount = field(triton(template), "volumeMounts[name=model-repository]")
        assert mount == {"name": "model-repository", "mountPath": "/mnt/models", "readOnly": True}
        assert repository_arg(template) == "/mnt/models"

    def test_file_cache_on_local_ssd(self, helm: Path) -> None:
        template = self.fuse(helm, fileCacheCapacity="200Gi")
        cache = field(template, "spec.volumes[name=gke-gcsfuse-cache]")
        assert cache == {"name": "gke-gcsfuse-cache", "emptyDir": {"sizeLimit": "200Gi"}}
        selector = template["spec"]["nodeSelector"]
        assert selector["cloud.google.com/gke-ephemeral-storage-local-ssd"] == "true"
        assert selector["cloud.google.com/gke-accelerator"] == "nvidia-l4"  # still merged

    def test_file_cache_in_memory(self, helm: Path) -> None:
        template = self.fuse(helm, fileCache="memory", fileCacheCapacity="8Gi")
        cache = field(template, "spec.volumes[name=gke-gcsfuse-cache].emptyDir")
        assert cache == {"medium": "Memory", "sizeLimit": "8Gi"}
        assert "cloud.google.com/gke-ephemeral-storage-local-ssd" not in template["spec"].get(
            "nodeSelector", {}
        )

    def test_no_file_cache(self, helm: Path) -> None:
        template = self.fuse(helm, fileCache="none", readAheadKb=0, metadataPrefetch=False)
        assert field(template, "spec.volumes[name=gke-gcsfuse-cache]") is None
        attributes = field(template, "spec.volumes[name=model-repository].csi.volumeAttributes")
        assert "fileCacheCapacity" not in attributes
        assert attributes["mountOptions"] == "implicit-dirs,only-dir=serving/bert"
        assert attributes["gcsfuseMetadataPrefetchOnMount"] == "false"

    def test_a_whole_bucket_and_extra_options(self, helm: Path) -> None:
        values = {
            "modelRepository": "gs://models-bucket",
            "modelLoading": {
                "gcsFuse": {
                    "enabled": True,
                    "mountPath": "/models",
                    "extraMountOptions": ["file-cache:download-chunk-size-mb=200"],
                }
            },
        }
        template = pod(helm, values)
        attributes = field(template, "spec.volumes[name=model-repository].csi.volumeAttributes")
        assert attributes["mountOptions"] == (
            "implicit-dirs,file-cache:enable-parallel-downloads:true,read_ahead_kb=1024,"
            "file-cache:download-chunk-size-mb=200"
        )
        assert repository_arg(template) == "/models"


class TestModelCache:
    @staticmethod
    def cached(helm: Path, **settings: Any) -> Manifest:
        return pod(helm, {"modelLoading": {"cache": {"enabled": True, **settings}}})

    def test_an_init_container_fills_the_volume_triton_reads(self, helm: Path) -> None:
        template = self.cached(helm)
        (init,) = template["spec"]["initContainers"]
        assert init["name"] == "model-cache"
        assert init["image"] == "gcr.io/google.com/cloudsdktool/google-cloud-cli:594.0.0-slim"
        assert init["command"][3:] == ["/model-cache/repository", REPO]
        assert {"name": "CLOUDSDK_CONFIG", "value": "/tmp/gcloud"} in init["env"]
        assert init["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["name"]: m for m in init["volumeMounts"]}
        assert mounts["model-cache"] == {"name": "model-cache", "mountPath": "/model-cache"}
        assert mounts["tmp"]["mountPath"] == "/tmp"
        assert field(triton(template), "volumeMounts[name=model-cache].readOnly") is True
        assert repository_arg(template) == "/model-cache/repository"
        volume = field(template, "spec.volumes[name=model-cache]")
        assert volume == {"name": "model-cache", "emptyDir": {"sizeLimit": "50Gi"}}

    def test_memory_and_persistent_volumes(self, helm: Path) -> None:
        memory = self.cached(helm, volume={"type": "memory", "sizeLimit": "4Gi"})
        assert field(memory, "spec.volumes[name=model-cache].emptyDir") == {
            "medium": "Memory",
            "sizeLimit": "4Gi",
        }
        claim = {"type": "persistentVolumeClaim", "claimName": "bert-cache"}
        persistent = self.cached(helm, volume=claim)
        assert field(persistent, "spec.volumes[name=model-cache]") == {
            "name": "model-cache",
            "persistentVolumeClaim": {"claimName": "bert-cache"},
        }

    def test_the_copy_line_runs(self, helm: Path, tmp_path: Path) -> None:
        """The init container's shell line, run with a `gcloud` that records its arguments:
        the destination folder is created first, then rsync goes from source to destination."""
        gcloud = tmp_path / "bin" / "gcloud"
        gcloud.parent.mkdir()
        gcloud.write_text(
            f'#!/bin/sh\ntest -d "$6" || exit 3\nprintf "%s\\n" "$@" > {tmp_path}/gcloud-args\n'
        )
        gcloud.chmod(0o755)
        cache = tmp_path / "cache"
        (init,) = self.cached(helm, mountPath=str(cache))["spec"]["initContainers"]
        result = subprocess.run(
            init["command"],
            env={**os.environ, "PATH": f"{gcloud.parent}{os.pathsep}{os.environ['PATH']}"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "gcloud-args").read_text().splitlines() == [
            "storage",
            "rsync",
            "--recursive",
            "--delete-unmatched-destination-objects",
            REPO,
            f"{cache}/repository",
        ]


class TestExtraVolumesAndEnvironment:
    def test_reach_the_pod(self, helm: Path) -> None:
        values: dict[str, Any] = {
            "extraEnvFrom": [
                {"secretRef": {"name": "s3-credentials"}},
                {"configMapRef": {"name": "hub"}, "prefix": "HF_"},
            ],
            "extraVolumes": [{"name": "ca", "configMap": {"name": "ca-bundle"}}],
            "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/s3", "readOnly": True}],
        }
        template = pod(helm, values)
        assert triton(template)["envFrom"] == values["extraEnvFrom"]
        assert field(template, "spec.volumes[name=ca]") == values["extraVolumes"][0]
        assert field(triton(template), "volumeMounts[name=ca]") == values["extraVolumeMounts"][0]


FAILURES: list[tuple[str, dict[str, Any], str]] = [
    (
        "fuse-and-cache",
        {"modelLoading": {"gcsFuse": {"enabled": True}, "cache": {"enabled": True}}},
        "modelLoading.gcsFuse and modelLoading.cache both replace Triton's download",
    ),
    (
        "fuse-on-s3",
        {"modelRepository": "s3://bucket/models", "modelLoading": {"gcsFuse": {"enabled": True}}},
        'but modelRepository is "s3://bucket/models": set it to gs://BUCKET/PATH',
    ),
    (
        "claim-without-name",
        {"modelLoading": {"cache": {"enabled": True, "volume": {"type": "persistentVolumeClaim"}}}},
        "needs modelLoading.cache.volume.claimName",
    ),
    (
        "host-path",
        {"extraVolumes": [{"name": "models", "hostPath": {"path": "/models"}}]},
        "models is a hostPath volume, which Pod Security restricted forbids",
    ),
    (
        "chart-volume-name",
        {"extraVolumes": [{"name": "tmp", "emptyDir": {}}]},
        "the name tmp is the chart's own volume",
    ),
    (
        "thread-count-twice",
        {"server": {"extraArgs": ["--model-load-thread-count=2"]}},
        "server.extraArgs sets --model-load-thread-count, which the chart writes itself",
    ),
    ("thread-count-zero", {"modelLoading": {"threadCount": 0}}, "/modelLoading/threadCount"),
    (
        "unknown-file-cache",
        {"modelLoading": {"gcsFuse": {"fileCache": "disk"}}},
        "/modelLoading/gcsFuse/fileCache",
    ),
    (
        "unknown-sidecar-resource",
        {"modelLoading": {"gcsFuse": {"sidecarResources": {"gpu-limit": "1"}}}},
        "additional properties 'gpu-limit'",
    ),
    (
        "mount-option-with-comma",
        {"modelLoading": {"gcsFuse": {"extraMountOptions": ["a,b"]}}},
        "/modelLoading/gcsFuse/extraMountOptions/0",
    ),
    ("env-from-nothing", {"extraEnvFrom": [{}]}, "/extraEnvFrom/0"),
    ("mount-without-path", {"extraVolumeMounts": [{"name": "ca"}]}, "/extraVolumeMounts/0"),
]


@pytest.mark.parametrize(
    ("values", "message"), [c[1:] for c in FAILURES], ids=[c[0] for c in FAILURES]
)
def test_refused_with_what_to_set(helm: Path, values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmFailedError) as failure:
        render_chart(helm, {"modelRepository": REPO, **values})
    assert message in failure.value.stderr
