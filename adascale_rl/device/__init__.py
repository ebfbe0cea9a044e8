"""How a variant behaves in a context: catalogs and device physics."""

from adascale_rl.device.catalog import Catalog, CatalogError, Variant, load_catalog

__all__ = ["Catalog", "CatalogError", "Variant", "load_catalog"]
