//! Packer templates for building on top of an ecs-build raw image.
