;; Hostile test component: four core instances, each with its own 48 MiB linear memory (192 MiB
;; together), exporting `trellis:http/routes` so the host instantiates it at load. A limit
;; checked per memory would let each through; Trellis counts the instance's memories together.
(component
  (core module $main
    (memory (export "memory") 768)
    ;; `routes` returns its list through a return area; at address 0 it reads (0, 0): no routes.
    (func (export "routes") (result i32) (i32.const 0)))
  (core module $hoard (memory 768))
  (core instance $main (instantiate $main))
  (core instance (instantiate $hoard))
  (core instance (instantiate $hoard))
  (core instance (instantiate $hoard))

  (type $route (record (field "method" string) (field "pattern" string)))
  (type $routes-type (func (result (list $route))))
  (func $routes (type $routes-type) (canon lift (core func $main "routes") (memory (core memory $main "memory"))))

  ;; The interface's instance, with its record type exported, as wit-component shapes it.
  (component $interface
    (type $route-def (record (field "method" string) (field "pattern" string)))
    (import "import-type-route" (type $route-in (eq $route-def)))
    (import "import-func-routes" (func $f (result (list $route-in))))
    (export $route-out "route" (type $route-in))
    (export "routes" (func $f) (func (result (list $route-out)))))
  (instance $routes-instance (instantiate $interface
    (with "import-func-routes" (func $routes))
    (with "import-type-route" (type $route))))
  (export "trellis:http/routes@0.1.0" (instance $routes-instance)))
