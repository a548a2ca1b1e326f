//! Disk layouts written as plain files: no root, no loop devices, no mounting.
//! It knows nothing of ECS: callers hand it a typed plan and a filesystem tree.
