# Bulk import: an object created under import_prefix in the bucket invokes the compactor, which loads
# it into the stream. The rule is events/object-storage/import-rule.json (owned with the import
# contract), rendered with this deployment's bucket and prefix: the deployed condition, description
# and actions are that file's by construction. Each action names a function; rule_functions maps the
# names to this deployment's functions. Rules also match events from child compartments; the
# bucketName filter keeps this one to our bucket.

locals {
  import_rule = jsondecode(templatefile("${path.module}/../../events/object-storage/import-rule.json", {
    bucket_name   = oci_objectstorage_bucket.data.name
    import_prefix = var.import_prefix
  }))
  rule_functions = {
    compactor = oci_functions_function.compactor.id
  }
}

resource "oci_events_rule" "imports" {
  compartment_id = var.compartment_ocid
  display_name   = "${var.name_prefix}-imports"
  description    = local.import_rule.description
  is_enabled     = local.import_rule.is_enabled
  condition      = jsonencode(local.import_rule.condition)

  actions {
    dynamic "actions" {
      for_each = local.import_rule.actions
      content {
        action_type = actions.value.action_type
        is_enabled  = actions.value.is_enabled
        description = actions.value.description
        function_id = local.rule_functions[actions.value.function]
      }
    }
  }

  lifecycle {
    # The compactor's own writes (snapshots, import markers) are object events too: never imports.
    precondition {
      condition = alltrue([
        for written in [local.snapshot_objects_prefix, local.import_markers_prefix] :
        !startswith(written, var.import_prefix) && !startswith(var.import_prefix, written)
      ])
      error_message = "import_prefix overlaps where the compactor writes (${local.snapshot_objects_prefix}, ${local.import_markers_prefix}): its own writes would trigger imports."
    }
  }
}
