//! cloud-init NoCloud seeds (volume `cidata`): an ISO 9660 writer and a FAT variant.
//! It knows nothing of ECS: it packs user-data, meta-data and network-config bytes.
