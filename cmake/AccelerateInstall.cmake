# Install rules and the package config that makes find_package(accelerate) work.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS accelerate accelerate_core EXPORT accelerateTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS accelerate_cli accelerate_check RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/accelerate DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT accelerateTargets NAMESPACE accelerate:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/accelerate)
configure_package_config_file(cmake/accelerateConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/accelerateConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/accelerate)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/accelerateConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/accelerateConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/accelerateConfigVersion.cmake
              cmake/AccelerateTorch.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/accelerate)
