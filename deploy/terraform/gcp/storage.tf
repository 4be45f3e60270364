# data: inputs, per-cycle work, training tables, models (mounted at /data by GCS FUSE).
# products: the published forecasts (mounted at /products). Objects expire by prefix; deleted
# and overwritten objects stay recoverable for a while (soft delete, noncurrent versions).
resource "google_storage_bucket" "data" {
  name                        = "${var.project_id}-probcast-data"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }
  soft_delete_policy {
    retention_duration_seconds = 7 * 86400
  }
  lifecycle_rule {
    condition {
      age            = var.inputs_retention_days
      matches_prefix = ["inputs/"]
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      age            = var.work_retention_days
      matches_prefix = ["work/"]
    }
    action {
      type = "Delete"
    }
  }
  # Replaced model and table versions are kept 90 days (rollback), then deleted.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 90
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }
  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket" "products" {
  name                        = "${var.project_id}-probcast-products"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # No retention lock: a republished cycle overwrites its own keys (docs/operations.md).
  soft_delete_policy {
    retention_duration_seconds = 7 * 86400
  }
  lifecycle_rule {
    condition {
      age = var.products_nearline_days
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }
  lifecycle_rule {
    condition {
      age = var.products_retention_days
    }
    action {
      type = "Delete"
    }
  }
  depends_on = [google_project_service.apis]
}
