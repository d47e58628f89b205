# Install rules and Debian packages (issue 17). Three components, one .deb
# each (`cpack -G DEB` in the build directory, into packages/):
#   scheduler  voucher-scheduler: the server, its unit, /etc example
#              configuration, the dashboards and alert rules
#   agent      voucher-agent: the agent, its unit, /etc example configuration
#   client     voucherctl, with its bash and zsh completion
# The servers' packages create a system user and its state directory and
# tell systemd of the unit; they neither enable nor start it, since both
# need configuring first (cmake/debian/, deploy/README.md "Packages").
# Tested by scripts/testing/packages.sh.
#
# Binaries go under the prefix (/usr in the packages; `cmake --install
# --prefix /usr` for the path the units name). The configuration and the
# units are absolute paths, outside any prefix: stage with DESTDIR.
include(GNUInstallDirs)

set(CV_SYSTEMD_UNIT_DIR "/lib/systemd/system" CACHE PATH
    "Where the systemd units are installed (Debian 12: /lib/systemd/system)")
set(CV_PACKAGE_MAINTAINER "computevoucher maintainers <computevoucher@example.cn>"
    CACHE STRING "Maintainer field of the Debian packages")

install(TARGETS voucher-scheduler RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        COMPONENT scheduler)
install(TARGETS voucher-agent RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        COMPONENT agent)
install(TARGETS voucherctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        COMPONENT client)
# Shell completion, as voucherctl itself prints it (client/README.md), in
# an environment without the builder's voucherctl settings. A cross build
# cannot run voucherctl: its package goes without.
if(NOT CMAKE_CROSSCOMPILING)
  set(cv_clean_env ${CMAKE_COMMAND} -E env --unset=VOUCHERCTL_PROFILE
      XDG_CONFIG_HOME=${CMAKE_CURRENT_BINARY_DIR}/completion-config)
  add_custom_command(
    OUTPUT voucherctl.bash _voucherctl
    COMMAND ${cv_clean_env} $<TARGET_FILE:voucherctl> completion bash > voucherctl.bash
    COMMAND ${cv_clean_env} $<TARGET_FILE:voucherctl> completion zsh > _voucherctl
    DEPENDS voucherctl
    COMMENT "Writing voucherctl's bash and zsh completion")
  add_custom_target(voucherctl_completion ALL
    DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/voucherctl.bash
            ${CMAKE_CURRENT_BINARY_DIR}/_voucherctl)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/voucherctl.bash
          DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
          RENAME voucherctl COMPONENT client)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/_voucherctl
          DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions
          COMPONENT client)
endif()

set(cv_deploy ${PROJECT_SOURCE_DIR}/deploy)
set(cv_doc ${CMAKE_INSTALL_DATAROOTDIR}/doc)
install(FILES ${cv_deploy}/systemd/voucher-scheduler.service
        DESTINATION ${CV_SYSTEMD_UNIT_DIR} COMPONENT scheduler)
install(FILES ${cv_deploy}/systemd/scheduler.textproto
        DESTINATION /etc/voucher-scheduler COMPONENT scheduler)
install(FILES ${cv_deploy}/systemd/scheduler-postgres.textproto
        DESTINATION ${cv_doc}/voucher-scheduler/examples COMPONENT scheduler)
install(FILES ${cv_deploy}/METRICS.md
        DESTINATION ${cv_doc}/voucher-scheduler COMPONENT scheduler)
install(DIRECTORY ${cv_deploy}/grafana ${cv_deploy}/prometheus
        DESTINATION ${CMAKE_INSTALL_DATADIR}/computevoucher COMPONENT scheduler
        PATTERN "*_test.yml" EXCLUDE)
install(FILES ${cv_deploy}/systemd/voucher-agent.service
        DESTINATION ${CV_SYSTEMD_UNIT_DIR} COMPONENT agent)
install(FILES ${cv_deploy}/systemd/agent.textproto
        DESTINATION /etc/voucher-agent COMPONENT agent)

# cv_debian_scripts(COMPONENT NAME CONFFILE WHAT): the maintainer scripts of
# a server's package, from cmake/debian/*.in with NAME (package, user, unit
# and state directory) and WHAT (what /var/lib/NAME holds) filled in, and
# its conffiles list.
function(cv_debian_scripts component name conffile what)
  set(dir ${PROJECT_BINARY_DIR}/debian/${name})
  set(CV_NAME ${name})
  set(CV_STATE_WHAT ${what})
  foreach(script postinst prerm postrm)
    configure_file(${PROJECT_SOURCE_DIR}/cmake/debian/${script}.in
                   ${dir}/${script} @ONLY)
  endforeach()
  file(WRITE ${dir}/conffiles "${conffile}\n")
  string(TOUPPER ${component} c)
  set(CPACK_DEBIAN_${c}_PACKAGE_CONTROL_EXTRA
      ${dir}/conffiles ${dir}/postinst ${dir}/prerm ${dir}/postrm PARENT_SCOPE)
  set(CPACK_DEBIAN_${c}_PACKAGE_CONTROL_STRICT_PERMISSION ON PARENT_SCOPE)
endfunction()
cv_debian_scripts(scheduler voucher-scheduler
  /etc/voucher-scheduler/scheduler.textproto "the store: money data")
cv_debian_scripts(agent voucher-agent
  /etc/voucher-agent/agent.textproto "the spool: usage not yet charged")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)
set(CPACK_COMPONENTS_ALL scheduler agent client)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${CV_PACKAGE_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_SECTION net)

# Descriptions: the summary, then the long text, line by line.
set(CPACK_DEBIAN_SCHEDULER_PACKAGE_NAME voucher-scheduler)
# passwd: useradd, in the maintainer scripts.
set(CPACK_DEBIAN_SCHEDULER_PACKAGE_DEPENDS passwd)
set(CPACK_DEBIAN_SCHEDULER_PACKAGE_SUGGESTS voucherctl)
set(CPACK_DEBIAN_SCHEDULER_DESCRIPTION "compute-voucher allocation scheduler
Issues compute vouchers, places GPU allocations on provider clusters
and charges the vouchers for the usage their agents meter, in a
double-entry journal. With a systemd unit (installed disabled), an
example configuration, Grafana dashboards and Prometheus alert rules
(/usr/share/computevoucher).")

set(CPACK_DEBIAN_AGENT_PACKAGE_NAME voucher-agent)
set(CPACK_DEBIAN_AGENT_PACKAGE_DEPENDS passwd)
# The process runtime's sandbox; the slurm runtime's client commands.
set(CPACK_DEBIAN_AGENT_PACKAGE_SUGGESTS "bubblewrap, slurm-client")
set(CPACK_DEBIAN_AGENT_DESCRIPTION "compute-voucher cluster agent
Runs on a provider's GPU cluster: hands allocations to tenants
(reservations, sandboxed processes or Slurm jobs), meters the GPUs they
hold and reports the usage to voucher-scheduler. With a systemd unit
(installed disabled) and an example configuration.")

set(CPACK_DEBIAN_CLIENT_PACKAGE_NAME voucherctl)
set(CPACK_DEBIAN_CLIENT_DESCRIPTION "command-line client of the compute-voucher scheduler
For enterprises (vouchers, quotes, GPU allocations, statements) and the
program office (programs, enterprises, vouchers, clusters, settlement,
audit).")

include(CPack)
