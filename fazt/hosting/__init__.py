"""Apps, deploy archives and the VFS (files live in the database)."""

from fazt.hosting._archive import ArchiveContents as ArchiveContents
from fazt.hosting._archive import ArchiveFile as ArchiveFile
from fazt.hosting._archive import ArchiveLimits as ArchiveLimits
from fazt.hosting._archive import read_archive as read_archive
from fazt.hosting._hosting import AppInfo as AppInfo
from fazt.hosting._hosting import DeployInfo as DeployInfo
from fazt.hosting._hosting import DeployResult as DeployResult
from fazt.hosting._hosting import Hosting as Hosting
from fazt.hosting._hosting import runtime_of as runtime_of
from fazt.hosting._manifest import MANIFEST_PATH as MANIFEST_PATH
from fazt.hosting._manifest import Manifest as Manifest
from fazt.hosting._manifest import parse_manifest as parse_manifest
from fazt.hosting._manifest import unknown_keys as unknown_keys
from fazt.hosting._mime import content_type_for as content_type_for
from fazt.hosting._mime import is_content_hashed as is_content_hashed
from fazt.hosting._names import RESERVED_APP_NAMES as RESERVED_APP_NAMES
from fazt.hosting._names import validate_app_name as validate_app_name
from fazt.hosting._pack import PackedFile as PackedFile
from fazt.hosting._pack import collect_files as collect_files
from fazt.hosting._pack import pack_tar_gz as pack_tar_gz
from fazt.hosting._site import CHUNK_BYTES as CHUNK_BYTES
from fazt.hosting._site import Site as Site
from fazt.hosting._site import StaticFile as StaticFile

__all__ = [
    "CHUNK_BYTES",
    "MANIFEST_PATH",
    "RESERVED_APP_NAMES",
    "AppInfo",
    "ArchiveContents",
    "ArchiveFile",
    "ArchiveLimits",
    "DeployInfo",
    "DeployResult",
    "Hosting",
    "Manifest",
    "PackedFile",
    "Site",
    "StaticFile",
    "collect_files",
    "content_type_for",
    "is_content_hashed",
    "pack_tar_gz",
    "parse_manifest",
    "read_archive",
    "runtime_of",
    "unknown_keys",
    "validate_app_name",
]
