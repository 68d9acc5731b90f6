"""The one resource through which assets reach the landing folder and DuckDB."""


from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import dagster as dg
import duckdb

from keha_maksatus import warehouse
from keha_maksatus.config import Settings, load_settings
from keha_maksatus.publish import OutputFolders, output_folders


class WarehouseResource(dg.ConfigurableResource):
    """Paths of the landing folder and the published DuckDB file; the working file
    lives in a hidden folder beside the published one."""

    landing_dir: str
    warehouse_path: str

    @property
    def published_path(self) -> Path:
        return Path(self.warehouse_path)

    @property
    def work_dir(self) -> Path:
        """The pipeline's working file, hidden beside the published one."""
        return self.published_path.parent / ".work"

    @property
    def working_file(self) -> Path:
        return warehouse.working_path(self.work_dir)

    @property
    def outputs(self) -> OutputFolders:
        return output_folders(self.published_path)

    def settings(self) -> Settings:
        return load_settings()

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.open_working(self.work_dir) as con:
            yield con
