"""Point-in-time household features from the contract's raw tables (pure; I/O in ``features.io``)."""

from features.build import as_timestamp, build_features, cut_to
from features.catalog import BY_ID, FEATURE_IDS, FEATURES, FeatureSpec
from features.policy import PolicyBook, PolicyVersion, parse_policy
from features.tables import TABLE_COLUMNS, Tables, make_tables, tables_from_bundle

__all__ = [
    "BY_ID", "FEATURES", "FEATURE_IDS", "FeatureSpec", "PolicyBook", "PolicyVersion", "TABLE_COLUMNS",
    "Tables", "as_timestamp", "build_features", "cut_to", "make_tables", "parse_policy", "tables_from_bundle",
]
