# With create_network (the default): a VCN with
#   - a public subnet for the API gateway (HTTPS in from anywhere, out through an internet gateway);
#   - a private subnet for the functions, whose only way out is a service gateway to the Oracle
#     Services Network: Streaming (Kafka, 9092), Object Storage, Vault, and the resource principal
#     token service are all reached there, and nothing else is.
# Without it: bring function_subnet_id and gateway_subnet_id with equivalent routes.

data "oci_core_services" "all" {
  count = var.create_network ? 1 : 0
  filter {
    name   = "name"
    values = ["All .* Services In Oracle Services Network"]
    regex  = true
  }
}

resource "oci_core_vcn" "this" {
  count          = var.create_network ? 1 : 0
  compartment_id = var.compartment_ocid
  display_name   = "${var.name_prefix}-vcn"
  cidr_blocks    = [var.vcn_cidr]
}

resource "oci_core_internet_gateway" "this" {
  count          = var.create_network ? 1 : 0
  compartment_id = var.compartment_ocid
  vcn_id         = oci_core_vcn.this[0].id
  display_name   = "${var.name_prefix}-internet"
  enabled        = true
}

resource "oci_core_service_gateway" "this" {
  count          = var.create_network ? 1 : 0
  compartment_id = var.compartment_ocid
  vcn_id         = oci_core_vcn.this[0].id
  display_name   = "${var.name_prefix}-services"
  services {
    service_id = data.oci_core_services.all[0].services[0].id
  }
}

resource "oci_core_route_table" "gateway" {
  count          = var.create_network ? 1 : 0
  compartment_id = var.compartment_ocid
  vcn_id         = oci_core_vcn.this[0].id
  display_name   = "${var.name_prefix}-gateway-routes"
  route_rules {
    destination       = "0.0.0.0/0"
    destination_type  = "CIDR_BLOCK"
    network_entity_id = oci_core_internet_gateway.this[0].id
  }
}

resource "oci_core_route_table" "functions" {
  count          = var.create_network ? 1 : 0
  compartment_id = var.compartment_ocid
  vcn_id         = oci_core_vcn.this[0].id
  display_name   = "${var.name_prefix}-function-routes"
  route_rules {
    destination       = data.oci_core_services.all[0].services[0].cidr_block
    destination_type  = "SERVICE_CIDR_BLOCK"
    network_entity_id = oci_core_service_gateway.this[0].id
  }
}

resource "oci_core_security_list" "gateway" {
  count          = var.create_network ? 1 : 0
  compartment_id = var.compartment_ocid
  vcn_id         = oci_core_vcn.this[0].id
  display_name   = "${var.name_prefix}-gateway"
  ingress_security_rules {
    protocol = "6" # TCP
    source   = "0.0.0.0/0"
    tcp_options {
      min = 443
      max = 443
    }
  }
  egress_security_rules {
    protocol    = "6"
    destination = "0.0.0.0/0"
  }
}

resource "oci_core_security_list" "functions" {
  count          = var.create_network ? 1 : 0
  compartment_id = var.compartment_ocid
  vcn_id         = oci_core_vcn.this[0].id
  display_name   = "${var.name_prefix}-functions"
  egress_security_rules {
    protocol         = "6"
    destination      = data.oci_core_services.all[0].services[0].cidr_block
    destination_type = "SERVICE_CIDR_BLOCK"
  }
}

resource "oci_core_subnet" "gateway" {
  count                      = var.create_network ? 1 : 0
  compartment_id             = var.compartment_ocid
  vcn_id                     = oci_core_vcn.this[0].id
  display_name               = "${var.name_prefix}-gateway"
  cidr_block                 = cidrsubnet(var.vcn_cidr, 8, 1)
  route_table_id             = oci_core_route_table.gateway[0].id
  security_list_ids          = [oci_core_security_list.gateway[0].id]
  prohibit_public_ip_on_vnic = false
}

resource "oci_core_subnet" "functions" {
  count                      = var.create_network ? 1 : 0
  compartment_id             = var.compartment_ocid
  vcn_id                     = oci_core_vcn.this[0].id
  display_name               = "${var.name_prefix}-functions"
  cidr_block                 = cidrsubnet(var.vcn_cidr, 8, 2)
  route_table_id             = oci_core_route_table.functions[0].id
  security_list_ids          = [oci_core_security_list.functions[0].id]
  prohibit_public_ip_on_vnic = true
}

locals {
  function_subnet_id = var.create_network ? oci_core_subnet.functions[0].id : var.function_subnet_id
  gateway_subnet_id  = var.create_network ? oci_core_subnet.gateway[0].id : var.gateway_subnet_id
}
