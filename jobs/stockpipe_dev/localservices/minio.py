"""A MinIO server built from source with `go install`, with the lake bucket created at start."""

from __future__ import annotations

import secrets
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from stockpipe_dev.localservices.process import ProcessRecord, ServiceError, spawn, terminate, wait_until
from stockpipe_dev.localservices.toolchain import go_install
from stockpipe_dev.localservices.versions import MINIO_MODULE, MINIO_VERSION


def ensure_minio() -> Path:
    return go_install(MINIO_MODULE, MINIO_VERSION, "minio")


@dataclass
class MinioServer:
    data_dir: Path
    port: int
    console_port: int
    bucket: str = "lake"
    access_key: str = "stockpipe"
    # Generated per server: a local MinIO never has a default password.
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # The S3 API's listen address: loopback unless pods on a bridge need it (the console stays on loopback).
    host: str = "127.0.0.1"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "minio.log"

    def start(self) -> ProcessRecord:
        binary = ensure_minio()
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        env = {
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
            "MINIO_CI_CD": "1",
        }
        argv = [
            str(binary),
            "server",
            str(self.data_dir / "data"),
            "--address",
            f"{self.host}:{self.port}",
            "--console-address",
            f"127.0.0.1:{self.console_port}",
        ]
        pid = spawn(argv, self.log_file, env=env)
        wait_until(self.ready, 60, "MinIO", pid=pid, log=self.log_file)
        self.create_bucket()
        return ProcessRecord(
            name="minio",
            pid=pid,
            log_file=str(self.log_file),
            ports={"api": self.port, "console": self.console_port},
            extra={
                "endpoint": self.endpoint,
                "bucket": self.bucket,
                "access_key": self.access_key,
                "secret_key": self.secret_key,
                "data_dir": str(self.data_dir),
            },
        )

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.endpoint}/minio/health/live", timeout=2) as resp:  # noqa: S310
            return bool(resp.status == 200)

    def filesystem(self) -> object:
        import s3fs

        return s3fs.S3FileSystem(
            key=self.access_key,
            secret=self.secret_key,
            endpoint_url=self.endpoint,
            client_kwargs={"region_name": "us-east-1"},
            skip_instance_cache=True,
        )

    def create_bucket(self) -> None:
        fs = self.filesystem()
        try:
            if not fs.exists(self.bucket):  # type: ignore[attr-defined]
                fs.mkdir(self.bucket)  # type: ignore[attr-defined]
        except Exception as exc:
            raise ServiceError(f"MinIO: could not create bucket {self.bucket}: {exc}") from exc

    @staticmethod
    def stop(record: ProcessRecord) -> None:
        terminate(record.pid)
