! vHPC MZ-DEMO: a small multi-zone heat solver, MPI between zones, OpenMP inside a zone.
!
! The unit square is cut into x_zones * y_zones zones of nx_zone * ny_zone points.
! Zones are dealt to MPI ranks in contiguous blocks; every iteration each zone
! receives its neighbours' edge values (MPI messages between ranks, copies
! within a rank) and takes one explicit heat-equation step, its loops shared by
! OpenMP threads. This is the communication pattern of NPB-MZ (SP-MZ/BT-MZ),
! but it is NOT an NPB benchmark and reports under its own name.
!
! Verification is analytic: the start field sin(pi x) sin(pi y) is an
! eigenvector of the discrete operator, so after n steps the field is exactly
! g**n times the start field (g from the grid), whatever the number of ranks
! and threads. The sum and the 2-norm of the field are checked against their
! closed forms; a wrong halo exchange breaks the eigenvector and fails it.
program mz_demo
  !$ use omp_lib
  implicit none
  include 'mpif.h'
  include 'npbparams.h'

  double precision, parameter :: r = 0.2d0, epsilon = 1.0d-9
  double precision, parameter :: pi = 3.141592653589793238d0
  integer, parameter :: nx = nx_zone, ny = ny_zone, nzones = x_zones * y_zones
  integer, parameter :: maxedge = max(nx_zone, ny_zone)

  integer :: me, nprocs, ierr, nthreads, zfirst, zlast, nlocal
  integer :: it, lz, z, f, nb, nreq, cur, nxt, i, j, nglob_x, nglob_y
  double precision, allocatable :: u(:, :, :, :), sbuf(:, :, :), rbuf(:, :, :)
  integer, allocatable :: req(:)
  double precision :: hx, hy, g, t0, tlocal, tmax, s1, s2, sums(2), gsums(2)
  double precision :: sum_exp, norm_exp, err_sum, err_norm, mops
  logical :: verified = .true.
  character(len=13) :: label

  call mpi_init(ierr)
  call mpi_comm_rank(MPI_COMM_WORLD, me, ierr)
  call mpi_comm_size(MPI_COMM_WORLD, nprocs, ierr)
  nthreads = 1
  !$ nthreads = omp_get_max_threads()

  if (nprocs_compiled > 0 .and. nprocs /= nprocs_compiled) then
    if (me == 0) write (*, '(a,i0,a,i0,a)') ' MZ-DEMO error: compiled for ', nprocs_compiled, &
      ' processes, started with ', nprocs, '; rebuild with NPROCS or run with that many processes'
    call mpi_abort(MPI_COMM_WORLD, 1, ierr)
  end if
  if (nprocs > nzones) then
    if (me == 0) write (*, '(a,i0,a,i0,a)') ' MZ-DEMO error: ', nprocs, ' processes but only ', nzones, &
      ' zones in this class'
    call mpi_abort(MPI_COMM_WORLD, 1, ierr)
  end if

  zfirst = zone_start(me)
  zlast = zone_start(me + 1) - 1
  nlocal = zlast - zfirst + 1
  nglob_x = x_zones * nx
  nglob_y = y_zones * ny
  hx = 1.0d0 / dble(nglob_x + 1)
  hy = 1.0d0 / dble(nglob_y + 1)

  allocate (u(0:nx + 1, 0:ny + 1, nlocal, 2), sbuf(maxedge, 4, nlocal), rbuf(maxedge, 4, nlocal))
  allocate (req(8 * nlocal))
  call initialize(1)
  cur = 1
  nxt = 2

  if (me == 0) then
    write (*, '(/a/)') ' vHPC MZ-DEMO: multi-zone heat solver (MPI+OpenMP); not an NPB benchmark'
    write (*, '(a,i4,a,i4)') ' Number of zones: ', x_zones, ' x ', y_zones
    write (*, '(a,i6,a,i6)') ' Zone size:  ', nx, ' x ', ny
    write (*, '(a,i6)') ' Iterations: ', niter_default
    write (*, '(a,i6)') ' Number of active processes: ', nprocs
    write (*, '(a,i6/)') ' Threads per process:        ', nthreads
  end if

  call mpi_barrier(MPI_COMM_WORLD, ierr)
  t0 = mpi_wtime()
  do it = 1, niter_default
    call exchange(cur)
    call step(cur, nxt)
    cur = 3 - cur
    nxt = 3 - nxt
  end do
  tlocal = mpi_wtime() - t0
  call mpi_reduce(tlocal, tmax, 1, MPI_DOUBLE_PRECISION, MPI_MAX, 0, MPI_COMM_WORLD, ierr)

  ! Verification: sum and 2-norm of the field against their closed forms.
  s1 = 0.0d0
  s2 = 0.0d0
  do lz = 1, nlocal
    !$omp parallel do private(i) reduction(+:s1, s2)
    do j = 1, ny
      do i = 1, nx
        s1 = s1 + u(i, j, lz, cur)
        s2 = s2 + u(i, j, lz, cur)**2
      end do
    end do
    !$omp end parallel do
  end do
  sums = (/ s1, s2 /)
  call mpi_reduce(sums, gsums, 2, MPI_DOUBLE_PRECISION, MPI_SUM, 0, MPI_COMM_WORLD, ierr)

  if (me == 0) then
    g = 1.0d0 - 4.0d0 * r * (sin(pi * hx / 2.0d0)**2 + sin(pi * hy / 2.0d0)**2)
    sum_exp = g**niter_default / (tan(pi * hx / 2.0d0) * tan(pi * hy / 2.0d0))
    norm_exp = abs(g)**niter_default * sqrt(dble(nglob_x + 1) * dble(nglob_y + 1)) / 2.0d0
    err_sum = abs(gsums(1) - sum_exp) / abs(sum_exp)
    err_norm = abs(sqrt(gsums(2)) - norm_exp) / norm_exp
    verified = err_sum <= epsilon .and. err_norm <= epsilon
    write (*, '(a)') ' Verification (computed, expected, relative error):'
    write (*, '(a,3es22.13)') '  sum(u)   ', gsums(1), sum_exp, err_sum
    write (*, '(a,3es22.13)') '  norm2(u) ', sqrt(gsums(2)), norm_exp, err_norm
    if (verified) then
      write (*, '(a,es10.2)') ' Verification Successful within epsilon', epsilon
    else
      write (*, '(a,es10.2)') ' Verification FAILED, epsilon', epsilon
    end if
    mops = 0.0d0
    if (tmax > 0.0d0) mops = 7.0d0 * dble(nglob_x) * dble(nglob_y) * dble(niter_default) / tmax / 1.0d6

    write (*, '(//a)') ' MZ-DEMO Benchmark Completed.'
    write (*, '(a,a25)') ' Class           = ', class_compiled
    write (*, '(a,i12,a,i8)') ' Size            = ', nglob_x, ' x ', nglob_y
    write (*, '(a,i12,a,i8)') ' Zones           = ', x_zones, ' x ', y_zones
    write (*, '(a,i25)') ' Iterations      = ', niter_default
    write (*, '(a,f25.4)') ' Time in seconds = ', tmax
    write (*, '(a,i25)') ' Total processes = ', nprocs
    if (nprocs_compiled > 0) then
      write (*, '(a,i25)') ' Compiled procs  = ', nprocs_compiled
    else
      write (*, '(a,a25)') ' Compiled procs  = ', 'any'
    end if
    write (*, '(a,i25)') ' Threads/process = ', nthreads
    write (*, '(a,f25.2)') ' Mop/s total     = ', mops
    write (*, '(a,f25.2)') ' Mop/s/process   = ', mops / dble(nprocs)
    if (verified) then
      write (*, '(a,a25)') ' Verification    = ', 'SUCCESSFUL'
    else
      write (*, '(a,a25)') ' Verification    = ', 'UNSUCCESSFUL'
    end if
    write (*, '(a,a25/)') ' Version         = ', 'vHPC MZ-DEMO 1.0'
    ! What sys/setparams copied from config/make.def, printed as NPB-MZ prints it (RAND as
    ! '(none)': like SP-MZ/BT-MZ/LU-MZ, MZ-DEMO uses no random numbers).
    label = fc_label
    write (*, '(a)') ' Compile options:'
    write (*, '(4x,a,a,a)') label, '= ', cs1
    write (*, '(a,a)') '    FLINK        = ', cs2
    write (*, '(a,a)') '    F_LIB        = ', cs3
    write (*, '(a,a)') '    F_INC        = ', cs4
    write (*, '(a,a)') '    FFLAGS       = ', cs5
    write (*, '(a,a)') '    FLINKFLAGS   = ', cs6
    write (*, '(a,a/)') '    RAND         = ', '(none)'
  end if

  call mpi_finalize(ierr)
  if (me == 0 .and. .not. verified) stop 1

contains

  ! First zone of rank rk (zones are dealt in contiguous blocks).
  integer function zone_start(rk)
    integer, intent(in) :: rk
    zone_start = (rk * nzones) / nprocs
  end function zone_start

  integer function owner(zone)
    integer, intent(in) :: zone
    integer :: rk
    owner = nprocs - 1
    do rk = 0, nprocs - 1
      if (zone < zone_start(rk + 1)) then
        owner = rk
        return
      end if
    end do
  end function owner

  ! Zone next to zone across face fc (1 west, 2 east, 3 south, 4 north), or -1 at the domain edge.
  integer function neighbor(zone, fc)
    integer, intent(in) :: zone, fc
    integer :: zx, zy
    zx = mod(zone, x_zones)
    zy = zone / x_zones
    neighbor = -1
    select case (fc)
    case (1)
      if (zx > 0) neighbor = zone - 1
    case (2)
      if (zx < x_zones - 1) neighbor = zone + 1
    case (3)
      if (zy > 0) neighbor = zone - x_zones
    case (4)
      if (zy < y_zones - 1) neighbor = zone + x_zones
    end select
  end function neighbor

  integer function opposite(fc)
    integer, intent(in) :: fc
    opposite = fc + 1
    if (mod(fc, 2) == 0) opposite = fc - 1
  end function opposite

  integer function edge_len(fc)
    integer, intent(in) :: fc
    edge_len = ny
    if (fc >= 3) edge_len = nx
  end function edge_len

  subroutine initialize(buf)
    integer, intent(in) :: buf
    integer :: l, zz, ii, jj, gi, gj
    u = 0.0d0
    do l = 1, nlocal
      zz = zfirst + l - 1
      !$omp parallel do private(ii, gi, gj)
      do jj = 1, ny
        do ii = 1, nx
          gi = mod(zz, x_zones) * nx + ii
          gj = (zz / x_zones) * ny + jj
          u(ii, jj, l, buf) = sin(pi * gi * hx) * sin(pi * gj * hy)
        end do
      end do
      !$omp end parallel do
    end do
  end subroutine initialize

  ! Interior edge of local zone l facing fc, copied into out.
  subroutine get_edge(l, fc, buf, out)
    integer, intent(in) :: l, fc, buf
    double precision, intent(out) :: out(*)
    select case (fc)
    case (1)
      out(1:ny) = u(1, 1:ny, l, buf)
    case (2)
      out(1:ny) = u(nx, 1:ny, l, buf)
    case (3)
      out(1:nx) = u(1:nx, 1, l, buf)
    case (4)
      out(1:nx) = u(1:nx, ny, l, buf)
    end select
  end subroutine get_edge

  ! Halo of local zone l across face fc, filled from vals.
  subroutine set_halo(l, fc, buf, vals)
    integer, intent(in) :: l, fc, buf
    double precision, intent(in) :: vals(*)
    select case (fc)
    case (1)
      u(0, 1:ny, l, buf) = vals(1:ny)
    case (2)
      u(nx + 1, 1:ny, l, buf) = vals(1:ny)
    case (3)
      u(1:nx, 0, l, buf) = vals(1:nx)
    case (4)
      u(1:nx, ny + 1, l, buf) = vals(1:nx)
    end select
  end subroutine set_halo

  ! Fill every zone's halos from its neighbours: MPI between ranks, copies within one.
  subroutine exchange(buf)
    integer, intent(in) :: buf
    integer :: l, zz, fc, other
    double precision :: tmp(maxedge)
    nreq = 0
    do l = 1, nlocal
      zz = zfirst + l - 1
      do fc = 1, 4
        other = neighbor(zz, fc)
        if (other >= 0) then
          if (owner(other) /= me) then
            nreq = nreq + 1
            call mpi_irecv(rbuf(1, fc, l), edge_len(fc), MPI_DOUBLE_PRECISION, owner(other), &
                           4 * zz + fc, MPI_COMM_WORLD, req(nreq), ierr)
          end if
        end if
      end do
    end do
    do l = 1, nlocal
      zz = zfirst + l - 1
      do fc = 1, 4
        other = neighbor(zz, fc)
        if (other >= 0) then
          if (owner(other) /= me) then
            call get_edge(l, fc, buf, sbuf(1, fc, l))
            nreq = nreq + 1
            call mpi_isend(sbuf(1, fc, l), edge_len(fc), MPI_DOUBLE_PRECISION, owner(other), &
                           4 * other + opposite(fc), MPI_COMM_WORLD, req(nreq), ierr)
          else
            call get_edge(other - zfirst + 1, opposite(fc), buf, tmp)
            call set_halo(l, fc, buf, tmp)
          end if
        end if
      end do
    end do
    call mpi_waitall(nreq, req, MPI_STATUSES_IGNORE, ierr)
    do l = 1, nlocal
      zz = zfirst + l - 1
      do fc = 1, 4
        other = neighbor(zz, fc)
        if (other >= 0) then
          if (owner(other) /= me) call set_halo(l, fc, buf, rbuf(1, fc, l))
        end if
      end do
    end do
  end subroutine exchange

  ! One explicit step of the heat equation in every local zone, loops shared by OpenMP threads.
  subroutine step(src, dst)
    integer, intent(in) :: src, dst
    integer :: l, ii, jj
    do l = 1, nlocal
      !$omp parallel do private(ii)
      do jj = 1, ny
        do ii = 1, nx
          u(ii, jj, l, dst) = u(ii, jj, l, src) + r * (u(ii - 1, jj, l, src) + u(ii + 1, jj, l, src) &
                              + u(ii, jj - 1, l, src) + u(ii, jj + 1, l, src) - 4.0d0 * u(ii, jj, l, src))
        end do
      end do
      !$omp end parallel do
    end do
  end subroutine step

end program mz_demo
